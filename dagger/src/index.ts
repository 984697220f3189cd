/**
 * Slipway: build, test, scan, publish, deploy and roll back the API.
 *
 * A thin layer over dagger/src/commands: those pure functions decide every argument and
 * command line (and are tested against real Trivy, sshd and Docker); this file only
 * composes containers from them.
 */
import { randomUUID } from "node:crypto";
import { argument, check, Container, dag, Directory, File, func, object, ReturnType, Secret } from "@dagger.io/dagger";
import { imageReference, INSTALL_COMMAND, LINT_COMMANDS, TEST_DB, testDatabaseUrl, testSummary, UNIT_TEST_COMMAND } from "./commands/pipeline.js";
import { failureSummary, postNotification, type ReleaseEvent, slackPayload } from "./commands/notify.js";
import { checkGitHub, markedRollback, markRolledBack } from "./commands/github.js";
import { validatePerson } from "./commands/shell.js";
import { hostResult, pinnedReference, releaseRef, resultSummary } from "./commands/release.js";
import { smokeJourney, smokeReport } from "./commands/smoke.js";
import { Release, releaseOf } from "./result.js";
import { DEPLOY_BUNDLE, deployArgs, kpiArgs, missingConnection, remoteScriptCommand, rollbackCall, type ScriptCall, shipArgv, sshArgv, type SshTarget, stagingDir, targetArgs } from "./commands/ssh.js";
import {
  dbWindow,
  gateReport,
  trivyCacheVolume,
  releaseBlockers,
  SCAN_GATE_EXIT_CODE,
  trivyConvertArgs,
  trivyScanArgs,
} from "./commands/trivy.js";

// Image defaults below are literals so `dagger functions` can show them; a test checks they
// equal the pins in commands/ (and the Dockerfile and compose file).
/** What `source` arguments leave out: dependencies, build output, secrets and host state. */
const SOURCE_IGNORE = ["**/node_modules", "dist", ".git", ".env", ".testenv", "backups", "bench/results", ".release-phase", ".deploy.lock"];
const SSH_KEY = "/run/slipway/ssh_key";
const KNOWN_HOSTS = "/run/slipway/known_hosts";
const OUT = "/out";

/** How a scan gets its vulnerability DB and which findings block: the constructor's, given once. */
interface ScanSettings {
  severity: string;
  ignoreUnfixed: boolean;
  trivyImage: string;
  dbRepository: string;
  dbRepositoryInsecure: boolean;
  trivyCache?: Directory;
}

/**
 * Slipway's release pipeline: every function runs the same way on a laptop and in CI. The host
 * that deploy, rollback, status, kpi and backup reach is given once, before the function
 * (`dagger call --host=… --user=… --ssh-key=… --known-hosts=… rollback`), or for on-call in the
 * .env of an environment's directory (environments/production/.env: SLIPWAY_HOST, SLIPWAY_USER,
 * SLIPWAY_SSHKEY, SLIPWAY_KNOWNHOSTS), so that `dagger call rollback` there needs no flags.
 */
@object()
export class Slipway {
  host: string;
  user: string;
  sshKey?: Secret;
  knownHosts?: Secret;
  port: number;
  dir: string;
  target: string;
  sshImage: string;
  severity: string;
  ignoreUnfixed: boolean;
  dbRepository: string;
  dbRepositoryInsecure: boolean;
  trivyCache?: Directory;
  trivyImage: string;
  nodeImage: string;
  postgresImage: string;

  /**
   * The host the release functions reach (README: "On-call setup"), and the settings the build,
   * test and scan functions share: each given once, before the function.
   */
  constructor(
    /** The server to release to (DNS name or IP). */
    host = "",
    /** SSH user on the host; it must be allowed to run docker. */
    user = "",
    /** Private SSH key: env:SSH_PRIVATE_KEY or file:~/.ssh/id_ed25519 (in a .env, file:///home/you/.ssh/id_ed25519). */
    sshKey?: Secret,
    /** known_hosts line(s) for the host (ssh-keyscan it once, check the fingerprint); unknown keys fail. */
    knownHosts?: Secret,
    port = 22,
    /** Directory on the host holding docker-compose.prod.yml and .env. */
    dir = "/opt/slipway",
    /** compose or swarm; empty: what the host's .env says (SLIPWAY_TARGET there). */
    target = "",
    sshImage = "alpine:3.22.2",
    /** Comma-separated severities that fail the scan (and that its reports include). */
    severity = "HIGH,CRITICAL",
    /** Skip advisories that have no fixed version yet. */
    ignoreUnfixed = true,
    /** OCI repository of Trivy's vulnerability DB in your own registry (air-gapped or behind a proxy), e.g. registry.acme.internal/trivy-db:2. */
    dbRepository = "",
    /** Allow plain HTTP or an untrusted certificate for dbRepository. */
    dbRepositoryInsecure = false,
    /** A pre-warmed Trivy cache directory (holding db/trivy.db and db/metadata.json): scan offline with it, no download. */
    trivyCache?: Directory,
    trivyImage = "aquasec/trivy:0.74.0",
    nodeImage = "node:22.20.0-bookworm-slim",
    postgresImage = "postgres:17.6-bookworm",
  ) {
    this.host = host;
    this.user = user;
    this.sshKey = sshKey;
    this.knownHosts = knownHosts;
    this.port = port;
    this.dir = dir;
    this.target = target;
    this.sshImage = sshImage;
    this.severity = severity;
    this.ignoreUnfixed = ignoreUnfixed;
    this.dbRepository = dbRepository;
    this.dbRepositoryInsecure = dbRepositoryInsecure;
    this.trivyCache = trivyCache;
    this.trivyImage = trivyImage;
    this.nodeImage = nodeImage;
    this.postgresImage = postgresImage;
  }
  /**
   * Build the API image from the repo's Dockerfile, with APP_VERSION baked in (GET /health reports it).
   */
  @func()
  build(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    version = "dev",
  ): Container {
    return source.dockerBuild({ buildArgs: [{ name: "APP_VERSION", value: version }] });
  }

  /**
   * Run the unit tests in Node against a real Postgres service, with npm's cache in a cache volume.
   */
  @func()
  @check()
  async test(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
  ): Promise<string> {
    const postgres = dag
      .container()
      .from(this.postgresImage)
      .withEnvVariable("POSTGRES_USER", TEST_DB.user)
      .withEnvVariable("POSTGRES_PASSWORD", TEST_DB.password)
      .withEnvVariable("POSTGRES_DB", TEST_DB.database)
      .withExposedPort(5432)
      .asService();
    return this.node(source)
      .withServiceBinding(TEST_DB.alias, postgres)
      .withEnvVariable("TEST_DATABASE_URL", testDatabaseUrl(TEST_DB.alias))
      .withExec(UNIT_TEST_COMMAND)
      .stdout();
  }

  /**
   * Typecheck and lint the code, and lint the SQL migrations with squawk (blocks DROP COLUMN/TABLE,
   * NOT NULL without a default, non-concurrent indexes and type changes; opt out per statement
   * with `-- squawk-ignore <rule>`).
   */
  @func()
  @check()
  async lint(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
  ): Promise<string> {
    let ctr = this.node(source);
    for (const command of LINT_COMMANDS) ctr = ctr.withExec(command);
    return ctr.stdout();
  }

  /**
   * The migrations newer than `since` (a dbmate version: the one `status` shows as the host's
   * schema; all without it) as one SQL file to review before a release, with squawk's findings
   * at its top. Export it: `dagger call migration-plan --since=… export --path=plan.sql`.
   */
  @func()
  migrationPlan(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    since = "",
  ): File {
    const plan = "/tmp/migration-plan.sql";
    return this.node(source).withExec(["node", "db/lint-migrations.mjs", "--plan", plan, "--since", since]).file(plan);
  }

  /**
   * Scan an image with Trivy (vulnerabilities only). Fails when a finding at or above `severity`
   * remains after `.trivyignore` and, by default, after dropping advisories with no fix yet.
   * Returns the human-readable report. Without `image`, scans a fresh build of `source`.
   */
  @func({ cache: "never" })
  @check()
  async scan(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    image?: Container,
  ): Promise<string> {
    return this.gate(this.trivy(source, image ?? this.build(source)));
  }

  /**
   * The scan's reports as files: report.json, report.sarif (for code scanning) and report.txt.
   * Does not fail on findings; use `scan` or `ci` to gate.
   */
  @func({ cache: "never" })
  scanReports(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    image?: Container,
  ): Directory {
    const { severity } = this;
    return this.trivy(source, image ?? this.build(source))
      .withExec(["trivy", ...trivyConvertArgs({ severity, format: "sarif", output: `${OUT}/report.sarif`, gate: false }, `${OUT}/report.json`)])
      .withExec(["trivy", ...trivyConvertArgs({ severity, format: "table", output: `${OUT}/report.txt`, gate: false }, `${OUT}/report.json`)])
      .directory(OUT);
  }

  /**
   * Build, scan and push the image to `registry/repository:tag`. Only the exact image that passed
   * the scan is pushed. Returns it pinned by digest, `registry/repository@sha256:…`: deploy that
   * (`deploy --tag <tag> --digest sha256:…`), never the tag, which a re-run re-points.
   */
  @func({ cache: "never" })
  async publish(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    /** Registry host, e.g. ghcr.io. */
    registry: string,
    /** Repository in the registry, e.g. acme/slipway-api. */
    repository: string,
    username: string,
    /** Registry password or token. */
    password: Secret,
    /** Image tag to release, e.g. the commit SHA. */
    tag: string,
  ): Promise<string> {
    const ref = imageReference(registry, repository, tag);
    const image = this.build(source, tag);
    await this.gate(this.trivy(source, image));
    return pinnedReference(await image.withRegistryAuth(registry, username, password).publish(ref));
  }

  /**
   * The main job: lint and unit tests alongside build and scan, then (only when registry
   * credentials are given, and only if everything passed) publish the scanned image.
   */
  @func({ cache: "never" })
  async ci(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    version = "dev",
    registry = "",
    repository = "",
    username = "",
    password?: Secret,
  ): Promise<string> {
    const image = this.build(source, version);
    // Every gate runs to its end, so one run reports every reason the commit is not releasable.
    const [lint, test, scan] = await Promise.allSettled([
      this.lint(source),
      this.test(source),
      this.gate(this.trivy(source, image)),
    ]);
    const failed = ciFailures({ lint, "unit tests": test, scan });
    if (failed) throw new Error(failed);
    const report = (scan as PromiseFulfilledResult<string>).value;
    const lines = ["lint: passed", `unit tests: passed (${testSummary((test as PromiseFulfilledResult<string>).value)})`, `scan: passed (${this.severity})`];
    if (registry && password) {
      const ref = imageReference(registry, repository, version);
      lines.push(`published: ${pinnedReference(await image.withRegistryAuth(registry, username, password).publish(ref))}`);
    } else {
      lines.push("publish: skipped (no registry credentials)");
    }
    return [...lines, "", report].join("\n").trimEnd();
  }

  /**
   * Ship the compose file, scripts and proxy config to a staging directory in `dir` on the host
   * over SSH, then run that bundle's `scripts/deploy.sh <tag>[@digest]` there, which installs it
   * under the deploy lock (never touching .env, backups or the release history) and does a
   * health-gated, zero-downtime roll. Fails when the script fails. With `smokeUrl`, the smoke
   * test follows, and a failed one rolls the host back. With `slackWebhook`, posts start and
   * result; a failed notification never fails the release. Returns the Release the host now
   * serves, typed from its result line: select a field, `… deploy --tag=v2 summary` (or digest,
   * slot, previous, verdict, log).
   */
  @func({ cache: "never" })
  async deploy(
    @argument({ defaultPath: "/", ignore: SOURCE_IGNORE })
    source: Directory,
    /** Image tag to release, e.g. the commit SHA. */
    tag: string,
    /** The registry digest `ci`/`publish` printed (sha256:…): the host runs exactly that image. */
    digest = "",
    timeout = 60,
    /** Seconds the host watches the new release through its proxy, the old one warm, before stopping the old (0: off; default: the host's GUARD_SECONDS, else 30). A bad release is switched back automatically. */
    guard = -1,
    /** Canary steps before the switch: percent shares of requests the new release takes in turn, e.g. "10,50" (100 follows); each is judged against the stable release, and a failed step is taken back at once. Empty: no canary. */
    canary = "",
    /** Seconds each canary step lasts. */
    canaryStep = 60,
    /** Requests the canary must get in a step to be judged (short of it, the step fails closed); 0 judges whatever came. */
    canaryMinRequests = 20,
    /** Public base URL to smoke-test after the switch (see `smoke`); a failure rolls back. */
    smokeUrl = "",
    /** Seconds the smoke test gives /health to report the new version (a CDN or load balancer in front settling). */
    smokeWait = 15,
    /** Slack incoming-webhook URL, e.g. env:SLACK_WEBHOOK_URL. */
    slackWebhook?: Secret,
    /** For the release record and the notification: environment, who deploys, who approved. */
    environment = "",
    operator = "",
    approver = "",
    /** For the notification: the commit, its author, and the commit subjects since the previous release (one per line). */
    commit = "",
    author = "",
    changelog = "",
  ): Promise<Release> {
    const release = releaseRef(tag, digest);
    const host = this.connection();
    const call: ScriptCall = { dir: this.dir, script: "deploy", tag: release, operator, approver, args: [...this.targetArgs(), ...deployArgs(timeout, guard, { steps: canary, stepSeconds: canaryStep, minRequests: canaryMinRequests })] };
    const event = { action: "deploy", environment, release, commit, author, operator, approver, changelog: lines(changelog) } as const;
    let smoke = "";
    const log = await this.notified(slackWebhook, event, async () => {
      const files = source.filter({ include: DEPLOY_BUNDLE.flatMap((path) => [path, `${path}/**`]), exclude: ["**/*.test.ts"] });
      const bundle = stagingDir(randomUUID());
      const out = await host.ssh
        .withDirectory("/bundle", files)
        .withExec(shipArgv(host.target, "/bundle", this.dir, bundle))
        .withExec(sshArgv(host.target, remoteScriptCommand({ ...call, bundle })))
        .combinedOutput();
      smoke = await this.smokeOrRollBack(smokeUrl, smokeWait, release, () => this.runHostScript({ dir: this.dir, script: "rollback", operator, args: this.targetArgs() }));
      return out + smoke;
    });
    return releaseOf(log, smoke);
  }

  /**
   * The smoke test through the public URL: /health reports `version` (when given), then an item
   * is created, read back and deleted. Prints each step; fails at the first failed step.
   */
  @func({ cache: "never" })
  async smoke(
    /** Public base URL, e.g. https://app.example.com */
    url: string,
    /** The version /health must report, e.g. the tag just deployed. */
    version = "",
  ): Promise<string> {
    const report = smokeReport(await smokeJourney(url, { version }));
    if (!report.passed) throw new Error(report.text);
    return report.text;
  }

  /**
   * Roll the host back with `scripts/rollback.sh [tag]`: to the previous release in its history
   * (the digest it ran), or to `tag`. Zero downtime, no migrations. With `githubToken` and
   * `githubRepository`, the GitHub deployment the host says it undid is then marked "rolled
   * back", so deploy.yml's gate refuses that digest (a rollback the host refused marks nothing). With `smokeUrl`, the smoke test follows; with
   * `slackWebhook`, the channel hears of it.
   */
  @func({ cache: "never" })
  async rollback(
    /** The release to return to (a tag or tag@sha256:…); empty: the one before the current one. */
    tag?: string,
    smokeUrl = "",
    slackWebhook?: Secret,
    /** The environment rolled back (staging, production): the release record, the notification and the GitHub deployment to mark. */
    environment = "",
    operator = "",
    /** A GitHub token that may write deployments (env:GH_TOKEN; in a .env, env://GH_TOKEN); with it the undone deployment is marked. */
    githubToken?: Secret,
    /** owner/name of the repository whose deployments the gate reads ($GITHUB_REPOSITORY). */
    githubRepository = "",
    /** The Actions run doing this, for the mark's description. */
    githubRun = "",
    /** The REST API's base URL (GitHub Enterprise Server: https://HOST/api/v3). */
    githubApi = "https://api.github.com",
  ): Promise<string> {
    this.connection();
    // Validated before anything is marked; an empty --tag is no tag.
    const call = rollbackCall(this.dir, tag, operator, this.targetArgs());
    const event = { action: "rollback", environment, release: call.tag ? releaseRef(call.tag) : "the previous release", operator } as const;
    const github = githubContext(githubToken, githubRepository, githubApi, environment, githubRun, operator);
    return this.notified(slackWebhook, event, async () => {
      const out = await markedRollback(github && ((host) => github.mark(host)), () => this.runHostScript(call));
      // The smoke test waits for the release the host says it rolled back to, then runs the journey.
      const back = hostResult(out)?.tag ?? "";
      return out + (await this.smokeOrRollBack(smokeUrl, 60, back, undefined));
    });
  }

  /**
   * Take a database backup on the host with `scripts/backup.sh` (into `dir`/backups).
   */
  @func({ cache: "never" })
  async backup(): Promise<string> {
    return this.runHostScript({ dir: this.dir, script: "backup" });
  }

  /**
   * Show the host's running release, health, deploy lock and last releases (`scripts/status.sh`).
   */
  @func({ cache: "never" })
  async status(): Promise<string> {
    return this.runHostScript({ dir: this.dir, script: "status", args: this.targetArgs() });
  }

  /**
   * What users got from each release slot since `since` (15m, 2h, 90s): requests, error rate,
   * p50/p95/p99 and availability from the proxy's own log, against the targets
   * (`scripts/status.sh --kpi`).
   */
  @func({ cache: "never" })
  async kpi(since = "15m"): Promise<string> {
    return this.runHostScript({ dir: this.dir, script: "status", args: kpiArgs(since) });
  }

  // --- composition helpers (not exposed as functions) ---------------------------------

  private node(source: Directory): Container {
    return dag
      .container()
      .from(this.nodeImage)
      .withMountedCache("/root/.npm", dag.cacheVolume("slipway-npm"))
      .withDirectory("/src", source)
      .withWorkdir("/src")
      .withExec(INSTALL_COMMAND)
      // The module's own tests and typecheck need its SDK.
      .withExec([...INSTALL_COMMAND, "--prefix", "dagger"]);
  }

  /**
   * Runs the scan once to JSON; the table, SARIF and the gate are rendered from that report. The
   * source's trivy.yaml (if any) is Trivy's own config, read from the working directory.
   */
  private trivy(source: Directory, image: Container): Container {
    const s: ScanSettings = { severity: this.severity, ignoreUnfixed: this.ignoreUnfixed, dbRepository: this.dbRepository, dbRepositoryInsecure: this.dbRepositoryInsecure, trivyCache: this.trivyCache, trivyImage: this.trivyImage };
    const config = source.filter({ include: [".trivyignore", "trivy.yaml"] });
    let ctr = dag.container().from(s.trivyImage);
    ctr = s.trivyCache
      ? ctr.withDirectory("/cache/trivy", s.trivyCache)
      : ctr
          // One cache per DB source: Trivy trusts a cached DB until its NextUpdate, whichever repository it came from.
          .withMountedCache("/cache/trivy", dag.cacheVolume(trivyCacheVolume(s.dbRepository)))
          .withEnvVariable("SLIPWAY_TRIVY_DB_WINDOW", dbWindow(new Date()));
    return ctr
      .withFile("/scan/image.tar", image.asTarball())
      .withDirectory("/scan/config", config)
      .withWorkdir("/scan/config")
      // Trivy does not create its output's directory (the official image has no /out).
      .withDirectory(OUT, dag.directory())
      .withExec([
        "sh", "-c",
        // A missing .trivyignore is fine: point Trivy at an empty one.
        "test -f /scan/config/.trivyignore || touch /scan/config/.trivyignore",
      ])
      .withExec([
        "trivy",
        ...trivyScanArgs({
          input: "/scan/image.tar",
          severity: s.severity,
          ignoreUnfixed: s.ignoreUnfixed,
          ignoreFile: "/scan/config/.trivyignore",
          format: "json",
          output: `${OUT}/report.json`,
          cacheDir: "/cache/trivy",
          offline: s.trivyCache !== undefined,
          dbRepository: s.dbRepository || undefined,
          insecure: s.dbRepositoryInsecure,
          gate: false,
        }),
      ]);
  }

  /** Fails unless both Trivy's exit code and the JSON report say the image is clean. */
  private async gate(scanned: Container): Promise<string> {
    const { severity } = this;
    const rendered = scanned.withExec(
      ["trivy", ...trivyConvertArgs({ severity, format: "table", gate: true }, `${OUT}/report.json`)],
      { expect: ReturnType.Any },
    );
    const [code, table, json] = await Promise.all([rendered.exitCode(), rendered.stdout(), scanned.file(`${OUT}/report.json`).contents()]);
    const verdict = gateReport(json, severity);
    if (code !== 0 && code !== SCAN_GATE_EXIT_CODE) throw new Error(`trivy failed (exit ${code}); the image is not cleared:\n${table}`);
    if ((code === SCAN_GATE_EXIT_CODE) !== verdict.blocked) throw new Error("trivy's exit code and its JSON report disagree; the image is not cleared");
    const blockers = releaseBlockers(verdict);
    if (blockers) throw new Error(`${table}\n${blockers}`);
    return table;
  }

  /**
   * The host as the constructor was given it: where ssh connects, and a container holding the
   * key and known_hosts. Fails in one line naming what is missing and where to set it.
   */
  private connection(): { target: SshTarget; ssh: Container } {
    const missing = missingConnection({ host: this.host, user: this.user, sshKey: Boolean(this.sshKey), knownHosts: Boolean(this.knownHosts) });
    if (missing) throw new Error(missing);
    const target = { host: this.host, user: this.user, port: this.port, keyPath: SSH_KEY, knownHostsPath: KNOWN_HOSTS };
    const ssh = dag
      .container()
      .from(this.sshImage)
      .withExec(["apk", "add", "--no-cache", "openssh-client", "bash", "tar"])
      .withMountedSecret(SSH_KEY, this.sshKey!, { mode: 0o600 })
      .withMountedSecret(KNOWN_HOSTS, this.knownHosts!, { mode: 0o644 })
      // The functions that use this say cache: "never", but the engine also caches each exec by
      // its inputs: a fresh input per call makes every call really reach the host.
      .withEnvVariable("SLIPWAY_CALL_ID", randomUUID());
    return { target, ssh };
  }

  /** --target for the host scripts that take it, when the constructor names one. */
  private targetArgs(): string[] {
    return targetArgs(this.target);
  }

  private async runHostScript(call: ScriptCall): Promise<string> {
    const { target, ssh } = this.connection();
    return ssh.withExec(sshArgv(target, remoteScriptCommand(call))).combinedOutput();
  }

  /**
   * After a release: the smoke test at `url` (nothing when empty). A failed one runs `rollBack`
   * (if given) and fails with both reports.
   */
  private async smokeOrRollBack(url: string, waitSeconds: number, release: string, rollBack?: () => Promise<string>): Promise<string> {
    if (!url) return "";
    const report = smokeReport(await smokeJourney(url, { version: release.split("@")[0], healthWaitMs: waitSeconds * 1000 }));
    if (report.passed) return `\n${report.text}`;
    if (!rollBack) {
      throw new Error(`the smoke test failed after the rollback${release ? ` to ${release}` : ""}: ${report.text.split("\n").at(-1)}; next: RUNBOOK.md §2, "When the rollback itself fails" (an older release, then restore)\n${report.text}`);
    }
    const undone = await rollBack().then((out) => ({ ok: true, out }), (err: Error) => ({ ok: false, out: err.message }));
    // First line: the whole story (what the notification says); then both reports.
    const summary = `${report.text.split("\n").at(-1)}; ${undone.ok ? "rolled back automatically" : "the automatic rollback FAILED too"}`;
    throw new Error(`${summary}\n${report.text}\n${undone.out}`);
  }

  /** Runs a release between a start and a result notification (when a webhook is given). */
  private async notified(webhook: Secret | undefined, event: Omit<ReleaseEvent, "phase">, run: () => Promise<string>): Promise<string> {
    const url = webhook ? await webhook.plaintext() : "";
    const post = async (phase: ReleaseEvent["phase"], detail?: string) => (url ? postNotification(url, slackPayload({ ...event, phase, detail })) : "");
    const warnings = [await post("start")];
    let out: string;
    try {
      out = await run();
    } catch (err) {
      await post("failure", failureSummary(err as Error));
      throw err;
    }
    const result = hostResult(out);
    warnings.push(await post("success", result ? resultSummary(result) : undefined));
    return [out.trimEnd(), ...warnings.filter(Boolean)].join("\n");
  }
}

/**
 * The GitHub side of a rollback, checked up front (one line naming what is wrong), or undefined
 * when no token is given.
 */
function githubContext(token: Secret | undefined, repository: string, api: string, environment: string, run: string, operator: string) {
  if (!token && !repository) return undefined;
  if (!token) throw new Error("--github-repository needs --github-token (env:GH_TOKEN) to mark the undone deployment");
  if (!/^\d{0,20}$/.test(run)) throw new Error(`invalid --github-run ${JSON.stringify(run)}: use the run's number ($GITHUB_RUN_ID)`);
  checkGitHub({ api, repository, environment });
  if (operator) validatePerson(operator);
  const note = `by ${operator || "dagger call rollback"}${run ? ` in run ${run}` : ""}`;
  return {
    // What the host's result line says it returned to and undid.
    mark: async (hostOutput: string) => {
      const host = hostResult(hostOutput);
      return markRolledBack({ api, repository, token: await token.plaintext() }, environment, { returnedTo: host?.tag, undid: host?.previous }, note);
    },
  };
}

/** Non-empty lines of a multi-line argument. */
const lines = (text: string) => text.split("\n").map((l) => l.trim()).filter(Boolean);

/** The failed gates of a ci run, each with its error, or "" when all passed. */
function ciFailures(gates: Record<string, PromiseSettledResult<string>>): string {
  const failed = Object.entries(gates).filter((e): e is [string, PromiseRejectedResult] => e[1].status === "rejected");
  if (failed.length === 0) return "";
  // An exec's error carries its output (the failing test, squawk's finding) beside the message.
  const tail = (text: string) => text.trimEnd().split("\n").slice(-60).join("\n");
  const reason = (err: unknown) => {
    const e = err as { message?: string; stdout?: string; stderr?: string };
    return [e.message ?? String(err), e.stdout && `stdout:\n${tail(e.stdout)}`, e.stderr && `stderr:\n${tail(e.stderr)}`].filter(Boolean).join("\n");
  };
  return [`ci failed: ${failed.map(([name]) => name).join(", ")}`, ...failed.map(([name, r]) => `--- ${name} failed:\n${reason(r.reason)}`)].join("\n");
}
