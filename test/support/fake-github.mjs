// A small model of GitHub's REST API for the gate's tests, answering in the shapes GitHub documents
// for `GET/POST /repos/{owner}/{repo}/deployments`, `.../deployments/{id}/statuses`,
// `GET .../actions/runs/{id}/approvals`,
// `GET .../environments/{name}`, `GET .../actions/runs`, `GET .../commits/{ref}` and
// `GET .../compare/{basehead}`: lists newest first, auto_inactive on a success status, and
// `per_page`/`page` with a Link header. Two faces share it and one JSON state file:
// fake-gh.mjs (a stand-in `gh api` for the workflows' shell) and serveGitHub (HTTP, for the
// module's own client, inside the Dagger engine too). Every call is appended to STATE + ".calls".
// Failures in GitHub's shapes: 404 for what is missing, 422 for a bad ref, and 403 ("Resource not
// accessible by integration") for every path matching a pattern in state.forbidden.
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { URLSearchParams } from "node:url";

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  /** The body GitHub sends with it. */
  body() {
    return { message: this.message, documentation_url: "https://docs.github.com/rest", status: String(this.status) };
  }
}

const STATES = ["error", "failure", "inactive", "in_progress", "queued", "pending", "success"];
const bot = { login: "github-actions[bot]", id: 41898282, type: "Bot" };
const api = (repo) => `https://api.github.com/repos/${repo}`;

export function loadState(stateFile) {
  const state = JSON.parse(readFileSync(stateFile, "utf8"));
  state.deployments ??= [];
  state.runs ??= [];
  state.clock ??= Date.parse("2026-12-01T00:00:00Z");
  state.nextId ??= 1000;
  return state;
}

/**
 * One request against the state: { method, path ("repos/o/r/…?query"), body } → { json, link }.
 * Throws HttpError for what GitHub answers 4xx. Mutates state.
 */
export function answer(state, { method, path, body = {} }) {
  const [pathname, qs = ""] = path.replace(/^\//, "").split("?");
  const q = Object.fromEntries(new URLSearchParams(qs));
  const repo = /^repos\/([^/]+\/[^/]+)\//.exec(pathname)?.[1];
  if (!repo) throw new HttpError(404, `unexpected path ${path}`);
  const rest = pathname.slice(`repos/${repo}/`.length);
  // A token without the permission an endpoint needs: GitHub answers 403 with this message.
  if ((state.forbidden ?? []).some((pattern) => new RegExp(pattern).test(rest))) throw new HttpError(403, "Resource not accessible by integration");
  const now = () => new Date((state.clock += 1000)).toISOString().replace(/\.000Z$/, "Z");
  const deployment = (id) => state.deployments.find((x) => x.id === Number(id)) ?? notFound();
  let m;
  if (rest === "deployments" && method === "GET") {
    const all = state.deployments
      .filter((d) => (!q.sha || d.sha === q.sha) && (!q.environment || d.environment === q.environment) && (!q.task || d.task === q.task))
      .sort((a, b) => b.id - a.id)
      .map(withoutStatuses);
    return page(all, q, `${api(repo)}/deployments`);
  }
  if (rest === "deployments" && method === "POST") {
    const id = state.nextId++;
    const at = now();
    const environment = body.environment ?? "production";
    const d = {
      url: `${api(repo)}/deployments/${id}`, id, node_id: `DE_${id}`, sha: body.ref, ref: body.ref, task: body.task ?? "deploy",
      payload: body.payload ?? {}, original_environment: environment, environment, description: body.description ?? null,
      creator: bot, created_at: at, updated_at: at, statuses_url: `${api(repo)}/deployments/${id}/statuses`,
      repository_url: api(repo), transient_environment: Boolean(body.transient_environment), production_environment: body.production_environment ?? environment === "production",
      statuses: [],
    };
    state.deployments.push(d);
    return { json: withoutStatuses(d) };
  }
  if ((m = /^deployments\/(\d+)$/.exec(rest))) return { json: withoutStatuses(deployment(m[1])) };
  if ((m = /^deployments\/(\d+)\/statuses$/.exec(rest))) {
    const d = deployment(m[1]);
    if (method === "GET") return page([...d.statuses].reverse(), q, `${d.url}/statuses`);
    if (!STATES.includes(body.state)) throw new HttpError(422, `state must be one of ${STATES.join(", ")}`);
    const status = addStatus(state, repo, d, body.state, body.description ?? "", body.environment_url ?? "", now);
    // auto_inactive (default true): earlier non-transient, non-production deployments of the same
    // environment that had a success state get an inactive status.
    if (body.state === "success" && String(body.auto_inactive) !== "false") {
      for (const o of state.deployments) {
        if (o.id < d.id && o.environment === d.environment && !o.transient_environment && !o.production_environment && o.statuses.some((s) => s.state === "success") && o.statuses.at(-1).state !== "inactive") {
          addStatus(state, repo, o, "inactive", "", "", now);
        }
      }
    }
    return { json: status };
  }
  if ((m = /^environments\/([^/]+)$/.exec(rest))) {
    const env = state.environments?.[m[1]] ?? notFound();
    return { json: { id: 1, name: m[1], protection_rules: env.protection_rules ?? [] } };
  }
  if ((m = /^actions\/runs\/(\d+)\/approvals$/.exec(rest))) return { json: state.approvals?.[m[1]] ?? [] };
  if (rest === "actions/runs") {
    const runs = state.runs.filter((r) => (!q.head_sha || r.head_sha === q.head_sha) && (!q.event || r.event === q.event));
    return { json: { total_count: runs.length, workflow_runs: runs } };
  }
  if ((m = /^commits\/(.+)$/.exec(rest))) {
    const sha = state.refs?.[m[1]] ?? (/^[0-9a-f]{40}$/.test(m[1]) ? m[1] : null);
    if (!sha) throw new HttpError(422, "No commit found for SHA");
    return { json: { sha, commit: { author: { name: "Fixture Author" }, message: "fixture" } } };
  }
  if ((m = /^compare\/(.+)\.\.\.(.+)$/.exec(rest))) return { json: { status: state.compare?.[`${m[1]}...${m[2]}`] ?? state.compare?.[m[2]] ?? "behind", commits: [] } };
  throw new HttpError(404, `no fake for ${method} ${path}`);
}

function notFound() {
  throw new HttpError(404, "Not Found");
}

// per_page (default 30, at most 100) and page, with GitHub's Link header to the next page.
function page(items, q, url) {
  const per = Math.min(Number(q.per_page ?? 30), 100);
  const n = Number(q.page ?? 1);
  const json = items.slice((n - 1) * per, n * per);
  if (n * per >= items.length) return { json };
  const next = new URLSearchParams({ ...q, page: String(n + 1) });
  return { json, link: `<${url}?${next}>; rel="next"` };
}

// The API serves a deployment without its statuses (they are their own endpoint).
function withoutStatuses(d) {
  return Object.fromEntries(Object.entries(d).filter(([k]) => k !== "statuses"));
}

function addStatus(state, repo, d, st, description, environmentUrl, now) {
  const id = state.nextId++;
  const at = now();
  const status = {
    url: `${d.url}/statuses/${id}`, id, node_id: `DES_${id}`, state: st, creator: bot, description, environment: d.environment,
    target_url: "", created_at: at, updated_at: at, deployment_url: d.url, repository_url: api(repo), environment_url: environmentUrl, log_url: "",
  };
  d.statuses.push(status);
  return status;
}

/** One call against the state file: load, answer, save, log. */
export function call(stateFile, request) {
  appendFileSync(`${stateFile}.calls`, `${JSON.stringify(request.log)}\n`);
  const state = loadState(stateFile);
  const out = answer(state, request);
  writeFileSync(stateFile, JSON.stringify(state, null, 1));
  return out;
}

/**
 * The API over HTTP on host:0, as api.github.com answers (a missing or wrong bearer token is a
 * 401). Resolves to { url, close }.
 */
export async function serveGitHub(stateFile, host, token) {
  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const send = (status, json, headers = {}) => res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(json));
      if (req.headers.authorization !== `Bearer ${token}`) return send(401, { message: "Bad credentials" });
      try {
        const body = raw ? JSON.parse(raw) : {};
        const out = call(stateFile, { method: req.method, path: req.url, body, log: [req.method, req.url.replace(/^\//, ""), ...(raw ? [raw] : [])] });
        send(req.method === "POST" ? 201 : 200, out.json, out.link ? { link: out.link.replaceAll("https://api.github.com", `http://${req.headers.host}`) } : {});
      } catch (err) {
        send(err.status ?? 500, err instanceof HttpError ? err.body() : { message: err.message });
      }
    });
  });
  await new Promise((r) => server.listen(0, host, r));
  return { url: `http://${host}:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
}
