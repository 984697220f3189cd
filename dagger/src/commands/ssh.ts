import { BUNDLE_ENTRIES, CANARY_MIN_REQUESTS_DEFAULT, CANARY_MIN_REQUESTS_MAX, CANARY_STEP_SECONDS_DEFAULT, CANARY_STEP_SECONDS_MAX, CANARY_STEPS_PATTERN, GUARD_SECONDS_MAX } from "./contract.js";
import { shellQuote, validateArg, validateDir, validateHost, validatePerson, validatePort, validateRef, validateUser } from "./shell.js";

/** The host scripts a pipeline may run remotely. */
export type HostScript = "deploy" | "rollback" | "backup" | "status";

/** What `deploy` copies to the host and installs: the compose file and everything it needs, never .env (scripts/lib/contract.sh). */
export const DEPLOY_BUNDLE = BUNDLE_ENTRIES;

export interface SshTarget {
  host: string;
  user: string;
  port: number;
  /** Paths inside the SSH client's container (or machine). */
  keyPath: string;
  knownHostsPath: string;
}

/**
 * `ssh` argv with host-key checking enforced against the given known_hosts: an unknown or
 * changed key fails the connection; nothing is trusted on first use.
 */
export function sshArgv(target: SshTarget, remoteCommand: string): string[] {
  const host = validateHost(target.host);
  const user = validateUser(target.user);
  const port = validatePort(target.port);
  return [
    "ssh",
    "-i", target.keyPath,
    "-p", String(port),
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${target.knownHostsPath}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=15",
    // A dead link is noticed within a minute instead of hanging until TCP gives up.
    "-o", "ServerAliveInterval=15",
    "-o", "ServerAliveCountMax=4",
    "-o", "LogLevel=ERROR",
    `${user}@${host.replace(/^\[|\]$/g, "")}`,
    "--",
    remoteCommand,
  ];
}

export interface ScriptCall {
  dir: string;
  script: HostScript;
  /** A release: a tag or tag@sha256:<digest> (deploy, optional for rollback). */
  tag?: string;
  /** Who runs it and who approved it, for the host's release record. */
  operator?: string;
  approver?: string;
  /** Extra flags and values, e.g. ["--timeout", "90"]. */
  args?: readonly string[];
  /** Run the script from this staged bundle (see stagingDir), which it installs under the lock. */
  bundle?: string;
}

/**
 * What the release functions lack to reach a host, as one line naming where to give it, or ""
 * when nothing is missing.
 */
export function missingConnection(given: { host: string; user: string; sshKey: boolean; knownHosts: boolean }): string {
  const names: [keyof typeof given, string][] = [["host", "--host / SLIPWAY_HOST"], ["user", "--user / SLIPWAY_USER"], ["sshKey", "--ssh-key / SLIPWAY_SSHKEY"], ["knownHosts", "--known-hosts / SLIPWAY_KNOWNHOSTS"]];
  const missing = names.filter(([k]) => !given[k]).map(([, flag]) => flag);
  if (missing.length === 0) return "";
  return `no host to reach: give ${missing.join(", ")} (flags before the function, e.g. dagger call --host=app.example.com rollback, or in environments/<name>/.env; README: "On-call setup")`;
}

/** --target for deploy.sh, rollback.sh and status.sh: compose or swarm, or nothing (the host's .env decides). */
export function targetArgs(target: string): string[] {
  if (target === "") return [];
  if (target !== "compose" && target !== "swarm") throw new Error(`invalid target ${JSON.stringify(target)}: use compose or swarm, or leave it out (the host's .env decides)`);
  return ["--target", target];
}

/** deploy.sh's flags: the health timeout, and the guard window when one is asked for (-1: the host's setting). */
export function deployArgs(timeout: number, guard: number, canary: Canary = NO_CANARY): string[] {
  if (!Number.isInteger(timeout) || timeout < 1) throw new Error(`invalid timeout ${timeout}: use a positive number of seconds`);
  if (!Number.isInteger(guard) || guard < -1 || guard > GUARD_SECONDS_MAX) throw new Error(`invalid guard ${guard}: use seconds from 0 (off) to ${GUARD_SECONDS_MAX}, or leave it out`);
  return ["--timeout", String(timeout), ...(guard >= 0 ? ["--guard", String(guard)] : []), ...canaryArgs(canary)];
}

/** deploy.sh --canary: percent steps ("" for none), each step's seconds, and the requests a step needs to be judged. */
export interface Canary {
  steps: string;
  stepSeconds: number;
  minRequests: number;
}
export const NO_CANARY: Canary = { steps: "", stepSeconds: CANARY_STEP_SECONDS_DEFAULT, minRequests: CANARY_MIN_REQUESTS_DEFAULT };

/** The canary's flags for deploy.sh, checked by the rules deploy.sh checks them by (scripts/lib/contract.sh). */
export function canaryArgs({ steps, stepSeconds, minRequests }: Canary): string[] {
  if (steps === "") return [];
  const shares = CANARY_STEPS_PATTERN.test(steps) ? steps.split(",").map(Number) : [];
  if (shares.length === 0 || shares.some((p, i) => p <= (shares[i - 1] ?? 0))) {
    throw new Error(`invalid canary ${JSON.stringify(steps)}: use rising percents from 1 to 99, comma-separated, e.g. 10,50 (100 follows)`);
  }
  if (!Number.isInteger(stepSeconds) || stepSeconds < 1 || stepSeconds > CANARY_STEP_SECONDS_MAX) throw new Error(`invalid canaryStep ${stepSeconds}: use seconds from 1 to ${CANARY_STEP_SECONDS_MAX}`);
  if (!Number.isInteger(minRequests) || minRequests < 0 || minRequests > CANARY_MIN_REQUESTS_MAX) throw new Error(`invalid canaryMinRequests ${minRequests}: use a whole number up to ${CANARY_MIN_REQUESTS_MAX} (0 judges whatever traffic came)`);
  return ["--canary", steps, "--canary-step", String(stepSeconds), "--canary-min-requests", String(minRequests)];
}

/** status.sh's flags for the KPI view; `since` is a duration (15m, 2h, 90s), checked here and on the host. */
export function kpiArgs(since: string): string[] {
  if (!/^[0-9]{1,6}[smh]$/.test(since)) throw new Error(`invalid since ${JSON.stringify(since)}: use a duration such as 15m, 2h or 90s`);
  return ["--kpi", "--since", since];
}

/** Where a shipped bundle waits, inside `dir`, until deploy.sh installs it under the lock. */
export function stagingDir(id: string): string {
  if (!/^[a-z0-9-]{8,64}$/.test(id)) throw new Error(`invalid bundle id ${JSON.stringify(id)}: use 8-64 of a-z, 0-9 and '-'`);
  return `incoming/${id}`;
}

/** The remote shell command that runs one host script in `dir`. Every value is validated, then quoted. */
export function remoteScriptCommand(call: ScriptCall): string {
  const dir = validateDir(call.dir);
  const from = call.bundle === undefined ? "." : `./${validateArg(call.bundle)}`;
  const words = [`${from}/scripts/${call.script}.sh`];
  if (call.bundle !== undefined) words.push("--bundle", call.bundle);
  words.push(...(call.args ?? []).map(validateArg));
  if (call.operator) words.push("--operator", validatePerson(call.operator));
  if (call.approver) words.push("--approver", validatePerson(call.approver));
  if (call.tag !== undefined) words.push(validateRef(call.tag));
  return `cd ${shellQuote(dir)} && ${words.map(shellQuote).join(" ")}`;
}

/**
 * A rollback's host call, checked whole before anything acts on it: an empty tag means "no tag"
 * (the release before), and every value is validated by building the remote command, so a bad
 * one fails here, before the GitHub deployment it would undo is marked.
 */
export function rollbackCall(dir: string, tag: string | undefined, operator: string, args: readonly string[]): ScriptCall {
  const call: ScriptCall = { dir, script: "rollback", tag: tag === "" ? undefined : tag, operator, args };
  remoteScriptCommand(call);
  return call;
}

/**
 * The remote command that unpacks the bundle into a staging directory inside `dir`. Nothing the
 * host runs changes until deploy.sh, under the lock and after the tag validates, installs it: a
 * transfer cut off half-way, or a refused deploy, leaves the installed files as they were.
 */
export function remoteUnpackCommand(dir: string, bundle: string): string {
  const staged = shellQuote(`${validateDir(dir).replace(/\/$/, "")}/${validateArg(bundle)}`);
  return `rm -rf ${staged} && mkdir -p ${staged} && tar -C ${staged} -xf -`;
}

/** argv of a local pipeline that tars the bundle in `bundleDir` and stages it on the host. */
export function shipArgv(target: SshTarget, bundleDir: string, dir: string, bundle: string): string[] {
  const tar = ["tar", "-C", bundleDir, "-cf", "-", ...DEPLOY_BUNDLE].map(shellQuote).join(" ");
  const ssh = sshArgv(target, remoteUnpackCommand(dir, bundle)).map(shellQuote).join(" ");
  return ["bash", "-o", "pipefail", "-c", `${tar} | ${ssh}`];
}
