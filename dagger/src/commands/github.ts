/**
 * The release gate's records in GitHub's Deployments API: what a rollback undid, marked so that
 * deploy.yml's gate (.github/scripts/deployments.sh passed-staging) refuses that digest. This is
 * the one writer of that mark; rollback.yml and a laptop's `dagger call rollback` both reach it.
 *
 * The rules are the contract's (scripts/lib/contract.sh, generated into ./contract.ts), which
 * deployments.sh reads too: the task our deployments carry, the states that decide a verdict
 * (the newest status in one of them; `inactive`, from auto_inactive, is not one), and the state
 * and description prefix of a rollback's mark.
 */
import { DECISIVE_STATES, DEPLOY_TASK, ROLLED_BACK_PREFIX, ROLLED_BACK_STATE } from "./contract.js";

export { DEPLOY_TASK };

/** GET /repos/{owner}/{repo}/deployments items, as far as we read them. */
export interface Deployment {
  id: number;
  sha: string;
  /** An object (or, for some old deployments, a JSON string) holding our digest. */
  payload?: unknown;
}

/** GET …/deployments/{id}/statuses items (newest first), as far as we read them. */
export interface DeploymentStatus {
  state: string;
  created_at: string;
  description?: string | null;
}

/** Where and as whom the API is reached. */
export interface GitHubContext {
  api: string;
  repository: string;
  token: string;
}

const DECISIVE: ReadonlySet<string> = new Set(DECISIVE_STATES);
const REPOSITORY = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;
const ENVIRONMENT = /^[a-z][a-z0-9_-]{0,39}$/;
const SHA = /^[0-9a-f]{40}$/;
/** Plain http only to this machine or a private network (a GitHub Enterprise Server or a test fake); the token travels with it. */
const PLAIN_HTTP_OK = /^http:\/\/(localhost|127\.\d+\.\d+\.\d+|10\.\d+\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+|192\.168\.\d+\.\d+)(:\d+)?(\/|$)/;

/** A deployment's verdict: its newest decisive status, or undefined while it has none. */
export function verdict(statusesNewestFirst: DeploymentStatus[]): DeploymentStatus | undefined {
  return statusesNewestFirst.find((s) => DECISIVE.has(s.state));
}

/** The digest a deployment of ours records in its payload ("-" when it has none). */
export function payloadDigest(d: Deployment): string {
  let p = d.payload;
  if (typeof p === "string") {
    try {
      p = JSON.parse(p);
    } catch {
      return "-";
    }
  }
  const digest = (p as { digest?: unknown } | null | undefined)?.digest;
  return typeof digest === "string" ? digest : "-";
}

/**
 * The commit a rollback returns to, when the tag names one (deploy.yml tags a release with its
 * commit SHA); undefined means "the release before the current one".
 */
export function rollbackTarget(tag: string | undefined): string | undefined {
  const name = (tag ?? "").split("@")[0]!;
  return SHA.test(name) ? name : undefined;
}

/** One deployment of a walk newest first, and whether it served (its verdict is success). */
export interface Walked {
  deployment: Deployment;
  live: boolean;
}

/**
 * What a rollback to `toSha` undid, from the environment's deployments newest first (the walk may
 * end at the target's first deployment): every live one newer than the target. With no target, or
 * a target this environment has no record of (deployed by hand), only the newest live one: the
 * release that served; never the whole history.
 */
export function undone(walk: Walked[], toSha: string | undefined): Deployment[] {
  const at = toSha === undefined ? -1 : walk.findIndex((w) => w.deployment.sha === toSha);
  const live = (at < 0 ? walk : walk.slice(0, at)).filter((w) => w.live).map((w) => w.deployment);
  return at < 0 ? live.slice(0, 1) : live;
}

/** Fails in one line unless the GitHub context is complete and well-formed. */
export function checkGitHub(ctx: { api: string; repository: string; environment: string }): void {
  if (!REPOSITORY.test(ctx.repository)) {
    throw new Error(`invalid GitHub repository ${JSON.stringify(ctx.repository)}: use owner/name, e.g. --github-repository=acme/shop (in CI: $GITHUB_REPOSITORY)`);
  }
  if (!ENVIRONMENT.test(ctx.environment)) {
    throw new Error(`marking the GitHub deployment needs the environment it ran in: give --environment=production (or staging), not ${JSON.stringify(ctx.environment)}`);
  }
  if (!ctx.api.startsWith("https://") && !PLAIN_HTTP_OK.test(ctx.api)) {
    throw new Error(`invalid GitHub API URL ${JSON.stringify(ctx.api)}: use https:// (plain http only to localhost or a private address), e.g. https://api.github.com`);
  }
}

type Fetch = typeof fetch;

const apiBase = (ctx: GitHubContext) => `${ctx.api.replace(/\/$/, "")}/repos/${ctx.repository}`;

/** The next page's URL from a Link header (GitHub paginates with rel="next"). */
export function nextPage(link: string | null): string | undefined {
  return link?.split(",").map((part) => /<([^>]+)>;\s*rel="next"/.exec(part)?.[1]).find(Boolean);
}

/** A network error or a 5xx is tried again (3 tries in all, 1 s then 2 s apart); the answer of the last try stands. */
async function request(ctx: GitHubContext, url: string, doFetch: Fetch, init: { method?: string; body?: unknown } = {}, retryDelayMs = 1000) {
  const send = () =>
    doFetch(url, {
      method: init.method ?? "GET",
      headers: {
        accept: "application/vnd.github+json",
        authorization: `Bearer ${ctx.token}`,
        "x-github-api-version": "2022-11-28",
        ...(init.body ? { "content-type": "application/json" } : {}),
      },
      body: init.body ? JSON.stringify(init.body) : undefined,
      signal: AbortSignal.timeout(15_000),
    });
  const what = `${init.method ?? "GET"} ${new URL(url).pathname}`;
  let res: Response | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await send();
      if (res.status < 500 || attempt === 3) break;
    } catch (err) {
      // The token is a secret: never echo the request, only what failed.
      if (attempt === 3) throw new Error(`GitHub did not answer ${what}: ${(err as Error).name}: ${(err as Error).message}`);
    }
    await new Promise((r) => setTimeout(r, retryDelayMs * attempt));
  }
  if (!res.ok) {
    const message = ((await res.json().catch(() => ({}))) as { message?: string }).message ?? res.statusText;
    throw new Error(`GitHub answered ${res.status} to ${what}: ${message}${res.status === 403 || res.status === 404 ? " (the token needs deployments: write on the repository)" : ""}`);
  }
  return { json: (await res.json()) as unknown, next: nextPage(res.headers.get("link")) };
}

async function* deployments(ctx: GitHubContext, environment: string, doFetch: Fetch): AsyncGenerator<Deployment> {
  const q = new URLSearchParams({ environment, task: DEPLOY_TASK, per_page: "100" });
  let url: string | undefined = `${apiBase(ctx)}/deployments?${q}`;
  while (url) {
    const page: { json: unknown; next?: string } = await request(ctx, url, doFetch);
    yield* page.json as Deployment[];
    url = page.next;
  }
}

/**
 * What the host says a rollback did, from its result line: the release it returned to and the
 * one it undid (tags; deploy.yml tags a release with its commit SHA).
 */
export interface HostRollback {
  returnedTo?: string;
  undid?: string;
}

/**
 * The deployments a rollback undid, by what the host did: every live one newer than the release
 * the host returned to, when GitHub has a record of that commit; else the live one of the commit
 * the host undid, or none when GitHub has no live record of it (a deploy still in flight). Only
 * when the host names no commit at all (a laptop's own tags, not deploy.yml's SHAs) is it the one
 * serving, as GitHub's records say.
 */
export function undoneByHost(walk: Walked[], host: HostRollback): Deployment[] {
  const to = rollbackTarget(host.returnedTo);
  if (to !== undefined && walk.some((w) => w.deployment.sha === to)) return undone(walk, to);
  const from = rollbackTarget(host.undid);
  if (from === undefined) return undone(walk, undefined);
  const served = walk.find((w) => w.live && w.deployment.sha === from);
  return served ? [served.deployment] : [];
}

/** Deployments newest first with their verdicts, up to the host's release returned to, or its live undone one. */
async function walk(ctx: GitHubContext, base: string, environment: string, host: HostRollback, doFetch: Fetch): Promise<Walked[]> {
  const to = rollbackTarget(host.returnedTo);
  const from = rollbackTarget(host.undid);
  const seen: Walked[] = [];
  for await (const deployment of deployments(ctx, environment, doFetch)) {
    if (deployment.sha === to) return [...seen, { deployment, live: false }];
    const statuses = (await request(ctx, `${base}/${deployment.id}/statuses?per_page=100`, doFetch)).json as DeploymentStatus[];
    seen.push({ deployment, live: verdict(statuses)?.state === "success" });
    if (to === undefined && seen.at(-1)!.live && (from === undefined || deployment.sha === from)) break;
  }
  return seen;
}

/**
 * Marks what a rollback of `environment` undid, as the host reported it (undoneByHost), with the
 * contract's state and prefix (`failure`, "rolled back: <note>"). Returns one line per deployment marked, or one saying there was none.
 */
export async function markRolledBack(ctx: GitHubContext, environment: string, host: HostRollback, note: string, doFetch: Fetch = fetch): Promise<string[]> {
  checkGitHub({ ...ctx, environment });
  const base = `${apiBase(ctx)}/deployments`;
  const lines: string[] = [];
  for (const d of undoneByHost(await walk(ctx, base, environment, host, doFetch), host)) {
    await request(ctx, `${base}/${d.id}/statuses`, doFetch, { method: "POST", body: { state: ROLLED_BACK_STATE, description: `${ROLLED_BACK_PREFIX}: ${note}`.slice(0, 140) } });
    lines.push(`marked GitHub deployment ${d.id} (${d.sha}, ${payloadDigest(d)}) rolled back`);
  }
  return lines.length ? lines : [`no live GitHub deployment of ${environment} is the release the host undid (${host.undid || "-"}): nothing to mark`];
}

/**
 * A rollback with its mark: the host first, under its lock, then the mark of what the host says
 * it undid. Marking first guessed from GitHub's records: during a deploy (whose record has no
 * status yet) it marked the release before, then the host's lock refused the rollback, and the
 * good release stayed refused by the gate. A host rollback that fails marks nothing. GitHub not
 * answering must not undo a rollback: this then fails naming the missing mark.
 */
export async function markedRollback(mark: ((hostOutput: string) => Promise<string[]>) | undefined, roll: () => Promise<string>): Promise<string> {
  const out = await roll();
  if (!mark) return out;
  const marked = await mark(out).then((lines) => ({ ok: true, text: lines.join("\n") }), (err: Error) => ({ ok: false, text: err.message }));
  if (!marked.ok) {
    throw new Error(`the host rolled back, but the GitHub deployment it undid is NOT marked, so deploy.yml could promote it again (${marked.text}); do not roll back again: mark it by hand, RUNBOOK.md §2 "When GitHub did not hear of the rollback"\n${out}`);
  }
  return `${marked.text}\n${out}`;
}
