#!/usr/bin/env node
// A stand-in for `gh api` in the workflow tests, over the model in fake-github.mjs (state in the
// JSON file FAKE_GH_STATE). Takes the flags the workflows use: -f/-F/--raw-field/--field, --input,
// -X/--method, --jq/-q, --paginate (every page, as gh does) and --silent.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { call, HttpError } from "./fake-github.mjs";

const stateFile = process.env.FAKE_GH_STATE;
if (!stateFile) fail("FAKE_GH_STATE is not set", 2);

const args = process.argv.slice(2);
if (args[0] === "run" && args[1] === "download") runDownload(args.slice(2));
if (args[0] !== "api") fail(`unsupported command: gh ${args.join(" ")}`);

// gh run download RUN --repo R --name NAME --dir DIR: a run's artifact, from state.artifacts[RUN][NAME]
// ({file: content}); gh's own words when there is none.
function runDownload(rest) {
  const run = rest[0];
  const opt = (flag) => rest[rest.indexOf(flag) + 1];
  const state = JSON.parse(readFileSync(stateFile, "utf8"));
  const files = state.artifacts?.[run]?.[opt("--name")];
  if (!files) fail("no valid artifacts found to download");
  mkdirSync(opt("--dir"), { recursive: true });
  for (const [name, content] of Object.entries(files)) writeFileSync(join(opt("--dir"), name), content);
  process.exit(0);
}

let path = "";
let jq = "";
let method = "";
let paginate = false;
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
  else if (a === "--paginate") paginate = true;
  else if (a === "--silent") continue;
  else if (a.startsWith("-")) fail(`unsupported flag ${a}`);
  else path = a;
}
// gh switches to POST when it is given fields or a body.
method ||= input || Object.keys(fields).length ? "POST" : "GET";

function fail(msg, code = 1) {
  process.stderr.write(`gh: ${msg}\n`);
  process.exit(code);
}

// --paginate follows the Link header and applies --jq to each page, as gh does.
const pages = [];
try {
  let next = path;
  let first = true;
  while (next) {
    const out = call(stateFile, { method, path: next, body: input ?? fields, log: first ? args : [...args.slice(0, 1), next] });
    pages.push(out.json);
    first = false;
    next = paginate && out.link ? /<https:\/\/api\.github\.com\/([^>]+)>/.exec(out.link)[1] : "";
  }
} catch (err) {
  // As gh does (cli/cli pkg/cmd/api processResponse): an error's JSON body goes to stdout
  // unfiltered, --jq or not, and "gh: <message> (HTTP <status>)" to stderr, exit 1. A caller that
  // reads stdout without checking the exit status reads the error body (cli/cli#5209).
  if (err instanceof HttpError) {
    process.stdout.write(`${JSON.stringify(err.body())}\n`);
    fail(`${err.message} (HTTP ${err.status})`);
  }
  throw err;
}
for (const json of pages) {
  const text = JSON.stringify(json);
  if (!jq) {
    process.stdout.write(`${text}\n`);
    continue;
  }
  const r = spawnSync("jq", ["-r", jq], { input: text, encoding: "utf8" });
  process.stdout.write(r.stdout);
  process.stderr.write(r.stderr);
  if (r.status !== 0) process.exit(r.status ?? 1);
}
