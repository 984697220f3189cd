/**
 * The release gate's records in GitHub's Deployments API: what a rollback undid, marked so that
 * deploy.yml's gate (.github/scripts/deployments.sh passed-staging) refuses that digest. This is
 * the one writer of that mark; rollback.yml and a laptop's `dagger call rollback` both reach it.
 *
 * The rules are deployments.sh's: our deployments carry task deploy:slipway; a deployment's
 * newest *decisive* status (success, failure, error) is its verdict, `inactive` (auto_inactive)
 * is not one; a rollback marks `failure` with a description starting "rolled back".
 */

export const DEPLOY_TASK = "deploy:slipway";

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

const DECISIVE = new Set(["success", "failure", "error"]);
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

/** The walk `undone` needs: deployments newest first with their verdicts, as far as it must go. */
async function walk(ctx: GitHubContext, base: string, environment: string, toSha: string | undefined, doFetch: Fetch): Promise<Walked[]> {
  const seen: Walked[] = [];
  for await (const deployment of deployments(ctx, environment, doFetch)) {
    if (deployment.sha === toSha) return [...seen, { deployment, live: false }];
    const statuses = (await request(ctx, `${base}/${deployment.id}/statuses?per_page=100`, doFetch)).json as DeploymentStatus[];
    seen.push({ deployment, live: verdict(statuses)?.state === "success" });
    if (toSha === undefined && seen.at(-1)!.live) break;
  }
  return seen;
}

/**
 * Marks what a rollback of `environment` to `toSha` (or to the release before) undid, `failure`
 * "rolled back: <note>". Returns one line per deployment marked, or one saying there was none.
 */
export async function markRolledBack(ctx: GitHubContext, environment: string, toSha: string | undefined, note: string, doFetch: Fetch = fetch): Promise<string[]> {
  checkGitHub({ ...ctx, environment });
  const base = `${apiBase(ctx)}/deployments`;
  const lines: string[] = [];
  for (const d of undone(await walk(ctx, base, environment, toSha, doFetch), toSha)) {
    await request(ctx, `${base}/${d.id}/statuses`, doFetch, { method: "POST", body: { state: "failure", description: `rolled back: ${note}`.slice(0, 140) } });
    lines.push(`marked GitHub deployment ${d.id} (${d.sha}, ${payloadDigest(d)}) rolled back`);
  }
  return lines.length ? lines : [`no live GitHub deployment of ${environment} to mark (nothing recorded through deploy.yml yet)`];
}

/**
 * A rollback with its mark: the mark first (a rollback cut off half-way still keeps the gate
 * closed to the release on-call wanted gone), then the host. GitHub not answering must not stop
 * a rollback: the host is rolled back all the same, then this fails naming the missing mark.
 */
export async function markedRollback(mark: (() => Promise<string[]>) | undefined, roll: () => Promise<string>): Promise<string> {
  if (!mark) return roll();
  const marked = await mark().then((lines) => ({ ok: true, text: lines.join("\n") }), (err: Error) => ({ ok: false, text: err.message }));
  const out = await roll();
  if (!marked.ok) {
    throw new Error(`the host rolled back, but the GitHub deployment it undid is NOT marked, so deploy.yml could promote it again (${marked.text}); do not roll back again: mark it by hand, RUNBOOK.md §2 "When GitHub did not hear of the rollback"\n${out}`);
  }
  return `${marked.text}\n${out}`;
}
