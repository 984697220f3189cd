#!/usr/bin/env node
// A stand-in for `gh api` in the workflow tests: a small model of GitHub's Deployments API (and
// the few other endpoints the gate reads) that answers in the shapes GitHub documents for
// `GET/POST /repos/{owner}/{repo}/deployments`, `.../deployments/{id}/statuses`,
// `GET .../actions/runs`, `GET .../commits/{ref}` and `GET .../compare/{basehead}`: lists newest
// first, and auto_inactive on a success status. State lives in the JSON file FAKE_GH_STATE;
// every call is appended to FAKE_GH_STATE + ".calls".
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { URLSearchParams } from "node:url";

const stateFile = process.env.FAKE_GH_STATE;
if (!stateFile) {
  process.stderr.write("fake gh: FAKE_GH_STATE is not set\n");
  process.exit(2);
}
const state = JSON.parse(readFileSync(stateFile, "utf8"));
state.deployments ??= [];
state.runs ??= [];
state.clock ??= Date.parse("2026-12-01T00:00:00Z");
state.nextId ??= 1000;

const args = process.argv.slice(2);
appendFileSync(`${stateFile}.calls`, `${JSON.stringify(args)}\n`);
if (args[0] !== "api") fail(`unsupported command: gh ${args.join(" ")}`);

let path = "";
let jq = "";
let method = "";
let input;
const fields = {};
for (let i = 1; i < args.length; i++) {
  const a = args[i];
  if (a === "--jq" || a === "-q") jq = args[++i];
  else if (a === "-f" || a === "-F" || a === "--raw-field" || a === "--field") {
    const [k, ...v] = args[++i].split("=");
    fields[k] = v.join("=");
  } else if (a === "--input") input = JSON.parse(readFileSync(args[++i] === "-" ? 0 : args[i], "utf8"));
  else if (a === "-X" || a === "--method") method = args[++i];
  else if (a === "--paginate" || a === "--silent") continue;
  else if (a.startsWith("-")) fail(`unsupported flag ${a}`);
  else path = a;
}
// gh switches to POST when it is given fields or a body.
method ||= input || Object.keys(fields).length ? "POST" : "GET";

function fail(msg, code = 1) {
  process.stderr.write(`gh: ${msg}\n`);
  process.exit(code);
}
const now = () => new Date((state.clock += 1000)).toISOString().replace(/\.000Z$/, "Z");
const repoOf = (p) => /^repos\/([^/]+\/[^/]+)\//.exec(p)?.[1] ?? fail(`unexpected path ${p}`);
const api = (repo) => `https://api.github.com/repos/${repo}`;
const bot = { login: "github-actions[bot]", id: 41898282, type: "Bot" };

function route() {
  const [pathname, qs = ""] = path.replace(/^\//, "").split("?");
  const q = Object.fromEntries(new URLSearchParams(qs));
  const repo = repoOf(pathname);
  const rest = pathname.slice(`repos/${repo}/`.length);
  let m;
  if (rest === "deployments" && method === "GET") {
    return state.deployments
      .filter((d) => (!q.sha || d.sha === q.sha) && (!q.environment || d.environment === q.environment) && (!q.task || d.task === q.task))
      .sort((a, b) => b.id - a.id)
      .map(withoutStatuses);
  }
  if (rest === "deployments" && method === "POST") {
    const body = input ?? fields;
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
    return withoutStatuses(d);
  }
  if ((m = /^deployments\/(\d+)$/.exec(rest))) {
    return withoutStatuses(state.deployments.find((x) => x.id === Number(m[1])) ?? fail("HTTP 404: Not Found", 1));
  }
  if ((m = /^deployments\/(\d+)\/statuses$/.exec(rest))) {
    const d = state.deployments.find((x) => x.id === Number(m[1])) ?? fail("HTTP 404: Not Found", 1);
    if (method === "GET") return [...d.statuses].reverse();
    const states = ["error", "failure", "inactive", "in_progress", "queued", "pending", "success"];
    if (!states.includes(fields.state)) fail(`HTTP 422: state must be one of ${states.join(", ")}`);
    const status = addStatus(repo, d, fields.state, fields.description ?? "", fields.environment_url ?? "");
    // auto_inactive (default true): earlier non-transient, non-production deployments of the same
    // environment that had a success state get an inactive status.
    if (fields.state === "success" && fields.auto_inactive !== "false") {
      for (const o of state.deployments) {
        if (o.id < d.id && o.environment === d.environment && !o.transient_environment && !o.production_environment && o.statuses.some((s) => s.state === "success") && o.statuses.at(-1).state !== "inactive") {
          addStatus(repo, o, "inactive", "", "");
        }
      }
    }
    return status;
  }
  if ((m = /^environments\/([^/]+)$/.exec(rest))) {
    const env = state.environments?.[m[1]] ?? fail("HTTP 404: Not Found", 1);
    return { id: 1, name: m[1], protection_rules: env.protection_rules ?? [] };
  }
  if (rest === "actions/runs") {
    const runs = state.runs.filter((r) => (!q.head_sha || r.head_sha === q.head_sha) && (!q.event || r.event === q.event));
    return { total_count: runs.length, workflow_runs: runs };
  }
  if ((m = /^commits\/(.+)$/.exec(rest))) {
    const sha = state.refs?.[m[1]] ?? (/^[0-9a-f]{40}$/.test(m[1]) ? m[1] : fail("HTTP 422: No commit found for SHA", 1));
    return { sha, commit: { author: { name: "Fixture Author" }, message: "fixture" } };
  }
  if ((m = /^compare\/(.+)\.\.\.(.+)$/.exec(rest))) {
    return { status: state.compare?.[m[2]] ?? "behind", commits: [] };
  }
  fail(`HTTP 404: no fake for ${method} ${path}`);
}

// The API serves a deployment without its statuses (they are their own endpoint).
function withoutStatuses(d) {
  return Object.fromEntries(Object.entries(d).filter(([k]) => k !== "statuses"));
}

function addStatus(repo, d, st, description, environmentUrl) {
  const id = state.nextId++;
  const at = now();
  const status = {
    url: `${d.url}/statuses/${id}`, id, node_id: `DES_${id}`, state: st, creator: bot, description, environment: d.environment,
    target_url: "", created_at: at, updated_at: at, deployment_url: d.url, repository_url: api(repo), environment_url: environmentUrl, log_url: "",
  };
  d.statuses.push(status);
  return status;
}

const out = route();
writeFileSync(stateFile, JSON.stringify(state, null, 1));
const text = JSON.stringify(out);
if (!jq) {
  process.stdout.write(`${text}\n`);
} else {
  const r = spawnSync("jq", ["-r", jq], { input: text, encoding: "utf8" });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  process.exit(r.status ?? 1);
}
