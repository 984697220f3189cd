import { shellQuote, validateArg, validateDir, validateHost, validatePort, validateTag, validateUser } from "./shell.js";

/** The host scripts a pipeline may run remotely. */
export type HostScript = "deploy" | "rollback" | "backup" | "status";

/** What `deploy` copies to the host: the compose file and everything it needs. Never .env. */
export const DEPLOY_BUNDLE = ["docker-compose.prod.yml", ".env.example", "RUNBOOK.md", "scripts", "proxy"] as const;

/** Host state that shipping must never overwrite. */
const HOST_STATE = [".env", "releases.log", "backups", ".deploy.lock", "slipway.log"] as const;

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
  /** A release tag (deploy, optional for rollback). */
  tag?: string;
  /** Extra flags and values, e.g. ["--timeout", "90"]. */
  args?: readonly string[];
}

/** The remote shell command that runs one host script in `dir`. Every value is validated, then quoted. */
export function remoteScriptCommand(call: ScriptCall): string {
  const dir = validateDir(call.dir);
  const words = [`./scripts/${call.script}.sh`, ...(call.args ?? []).map(validateArg)];
  if (call.tag !== undefined) words.push(validateTag(call.tag));
  return `cd ${shellQuote(dir)} && ${words.map(shellQuote).join(" ")}`;
}

/** The remote command that unpacks the bundle into `dir`, leaving host state untouched. */
export function remoteUnpackCommand(dir: string): string {
  const d = shellQuote(validateDir(dir));
  const keep = HOST_STATE.map((p) => `--exclude=${shellQuote(p)}`).join(" ");
  return `mkdir -p ${d} && tar -C ${d} ${keep} -xf -`;
}

/** argv of a local pipeline that tars the bundle in `bundleDir` and unpacks it on the host. */
export function shipArgv(target: SshTarget, bundleDir: string, dir: string): string[] {
  const tar = ["tar", "-C", bundleDir, "-cf", "-", ...DEPLOY_BUNDLE].map(shellQuote).join(" ");
  const ssh = sshArgv(target, remoteUnpackCommand(dir)).map(shellQuote).join(" ");
  return ["bash", "-o", "pipefail", "-c", `${tar} | ${ssh}`];
}
