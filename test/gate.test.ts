/**
 * The staging -> production gate as GitHub runs it: the workflows' own shell steps, run by bash
 * against a stand-in `gh` (support/fake-gh.mjs), and the module's rollback mark
 * (dagger/src/commands/github.ts) over HTTP, both answered by one model of the Deployments API in
 * its documented shapes (support/fake-github.mjs: auto_inactive, pagination). What is asserted is
 * what the steps decide.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { markRolledBack } from "../dagger/src/commands/github.js";
import { repoRoot } from "./support/database.js";
import { serveGitHub } from "./support/fake-github.mjs";

const REPO = "acme/shop";
const sha = (c: string) => c.repeat(40);
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const workflow = (f: string) => parse(readFileSync(join(repoRoot, ".github/workflows", f), "utf8"));
const step = (f: string, job: string, match: (s: any) => boolean): string => {
  const found = (workflow(f).jobs[job].steps as any[]).find(match);
  if (!found) throw new Error(`${f}/${job}: no such step`);
  return found.run;
};
const VERIFY = step("deploy.yml", "verify", (s) => s.id === "resolve");
const RECORD = step("deploy.yml", "deploy", (s) => s.id === "record");
const FACTS = step("deploy.yml", "deploy", (s) => s.id === "facts");
const MARK = step("deploy.yml", "deploy", (s) => /^Mark the deploy record/.test(s.name ?? ""));
const RECHECK = step("deploy.yml", "deploy", (s) => /^Check the gate again/.test(s.name ?? ""));
const ROLLBACK_INPUTS = step("rollback.yml", "rollback", (s) => /^Validate the inputs/.test(s.name ?? ""));

let dir = "";
let stateFile = "";
const calls = () => readFileSync(`${stateFile}.calls`, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as string[]);
const state = () => JSON.parse(readFileSync(stateFile, "utf8"));

/** Runs a workflow step's script as the runner does (bash -e -o pipefail), with its outputs. */
async function run(script: string, env: Record<string, string>) {
  const output = join(dir, `output-${Date.now()}-${Math.random()}`);
  writeFileSync(output, "");
  const r = await execa("bash", ["--noprofile", "--norc", "-eo", "pipefail", "-c", script], {
    cwd: repoRoot,
    reject: false,
    all: true,
    env: { PATH: `${dir}/bin:${process.env.PATH}`, FAKE_GH_STATE: stateFile, GH_TOKEN: "fake", REPO, GITHUB_OUTPUT: output, ...env },
  });
  const outputs = Object.fromEntries(readFileSync(output, "utf8").split("\n").filter((l) => /^\w+=/.test(l)).map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]));
  return { exitCode: r.exitCode ?? -1, all: String(r.all), outputs };
}

/** deploy.yml's deploy job on ENVIRONMENT: the record step, then the mark step with the job's outcome. */
async function deploy(environment: string, commit: string, dig: string, outcome: "success" | "failure") {
  const record = await run(RECORD, { SHA: commit, ENVIRONMENT: environment, DIGEST: dig });
  expect(record.exitCode, record.all).toBe(0);
  const mark = await run(MARK, { ID: record.outputs.id!, STATUS: outcome, APP_URL: "https://shop.example" });
  expect(mark.exitCode, mark.all).toBe(0);
  return Number(record.outputs.id);
}

const verify = (env: Record<string, string>) =>
  run(VERIFY, { EVENT: "workflow_dispatch", RUN_REF: "refs/heads/main", INPUT_CANARY: "", INPUT_CANARY_STEP: "60", ALLOW_UNREVIEWED_PRODUCTION: "", ...env });
/** The release an environment serves, as its host would name it undone: the newest deployment whose newest decisive status is success. */
const serving = (environment: string): string | undefined =>
  [...state().deployments]
    .filter((d: any) => d.environment === environment)
    .sort((a: any, b: any) => b.id - a.id)
    .find((d: any) => [...d.statuses].reverse().find((st: any) => ["success", "failure", "error"].includes(st.state))?.state === "success")?.sha;

/**
 * What `dagger call rollback --github-token … --operator=oncall --github-run=77` marks, over HTTP,
 * once the host has rolled back: the host returned to TAG (or the release before) and undid the
 * one serving.
 */
async function rollback(environment: string, tag = "") {
  const api = await serveGitHub(stateFile, "127.0.0.1", "fake-token");
  try {
    const host = { returnedTo: tag.split("@")[0] || undefined, undid: serving(environment) };
    return (await markRolledBack({ api: api.url, repository: REPO, token: "fake-token" }, environment, host, "by oncall in run 77")).join("\n");
  } finally {
    await api.close();
  }
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "slipway-gate-"));
  stateFile = join(dir, "state.json");
  writeFileSync(stateFile, JSON.stringify({ environments: { production: { protection_rules: [{ id: 1, type: "required_reviewers", reviewers: [] }] } } }));
  writeFileSync(`${stateFile}.calls`, "");
  const bin = join(dir, "bin");
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, "gh"), `#!/bin/sh\nexec node ${JSON.stringify(join(repoRoot, "test/support/fake-gh.mjs"))} "$@"\n`);
  chmodSync(join(bin, "gh"), 0o755);
});

describe("the staging -> production gate (deploy.yml verify)", () => {
  it("an older commit still passes after a newer one reached staging (its newest status is auto_inactive's `inactive`)", async () => {
    const a = await deploy("staging", sha("a"), digest("a"), "success");
    await deploy("staging", sha("b"), digest("b"), "success");
    const older = state().deployments.find((d: any) => d.id === a);
    expect(older.statuses.map((s: any) => s.state)).toEqual(["success", "inactive"]);
    const r = await verify({ INPUT_REF: sha("a") });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.outputs).toMatchObject({ sha: sha("a"), digest: digest("a"), environment: "production" });
  });

  it("a digest rolled back on staging is refused, naming the rollback; the release before it passes again", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    await deploy("staging", sha("b"), digest("b"), "success");
    const undo = await rollback("staging");
    expect(undo).toMatch(new RegExp(`^marked GitHub deployment \\d+ \\(${sha("b")}, ${digest("b")}\\) rolled back$`));
    const refused = await verify({ INPUT_REF: sha("b") });
    expect(refused.exitCode).toBe(1);
    expect(refused.all).toMatch(new RegExp(`::error::${sha("b")} was rolled back on staging \\(rolled back: by oncall in run 77, `));
    expect(refused.outputs.digest).toBeUndefined();
    expect((await verify({ INPUT_REF: sha("a") })).outputs.digest).toBe(digest("a"));
  });

  it("a staging deploy that failed, or none at all, is refused; a superseded ci run is named as the reason", async () => {
    await deploy("staging", sha("c"), digest("c"), "failure");
    const failed = await verify({ INPUT_REF: sha("c") });
    expect(failed.exitCode).toBe(1);
    expect(failed.all).toMatch(/the newest staging deploy of c{40} ended in failure/);
    const s = state();
    s.runs = [{ id: 9, name: "ci", head_sha: sha("d"), event: "push", status: "completed", conclusion: "cancelled" }];
    writeFileSync(stateFile, JSON.stringify(s));
    const superseded = await verify({ INPUT_REF: sha("d") });
    expect(superseded.exitCode).toBe(1);
    expect(superseded.all).toMatch(/d{40} has not passed staging .*its ci run was cancelled, superseded by a newer push to main/);
  });

  it("a redeploy that passes after a failed one passes: the newest decisive status decides", async () => {
    await deploy("staging", sha("e"), digest("e"), "failure");
    await deploy("staging", sha("e"), digest("e"), "success");
    expect((await verify({ INPUT_REF: sha("e") })).outputs.digest).toBe(digest("e"));
  });

  it("a dispatch from another branch fails with a message instead of skipping", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    const r = await verify({ INPUT_REF: sha("a"), RUN_REF: "refs/heads/feature" });
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/::error::deploy\.yml was dispatched from refs\/heads\/feature; dispatch it from main/);
    expect(workflow("deploy.yml").jobs.verify.if).not.toContain("refs/heads/main");
  });

  it("production without required reviewers (or missing) is refused unless ALLOW_UNREVIEWED_PRODUCTION=true", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    const s = state();
    delete s.environments.production;
    writeFileSync(stateFile, JSON.stringify(s));
    const r = await verify({ INPUT_REF: sha("a") });
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/::error::cannot read the production environment's protection rules/);
    expect((await verify({ INPUT_REF: sha("a"), ALLOW_UNREVIEWED_PRODUCTION: "true" })).exitCode).toBe(0);
  });

  it("the deploy job's timeout follows the canary steps, which are capped to fit", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    expect((await verify({ INPUT_REF: sha("a") })).outputs.timeout_minutes).toBe("20");
    expect((await verify({ INPUT_REF: sha("a"), INPUT_CANARY: "10,50", INPUT_CANARY_STEP: "600" })).outputs.timeout_minutes).toBe("60");
    const long = await verify({ INPUT_REF: sha("a"), INPUT_CANARY: "10,20,30", INPUT_CANARY_STEP: "1800" });
    expect(long.exitCode).toBe(1);
    expect(long.all).toMatch(/last 5400s; keep them to 3600s in all/);
    expect((await verify({ INPUT_REF: sha("a"), INPUT_CANARY: "10", INPUT_CANARY_STEP: "1801" })).all).toMatch(/use seconds from 1 to 1800/);
    expect(workflow("deploy.yml").jobs.deploy["timeout-minutes"]).toBe("${{ fromJSON(needs.verify.outputs.timeout_minutes) }}");
  });
});

/** Changes the fake's state: F gets the parsed state and edits it in place. */
const edit = (f: (s: any) => void) => {
  const s = state();
  f(s);
  writeFileSync(stateFile, JSON.stringify(s));
};

describe("GitHub as it really answers: failures on stdout, approvals that wait, rollbacks anywhere", () => {
  it("the stand-in fails as gh does: GitHub's error body on stdout, --jq or not, the message on stderr, exit 1", async () => {
    const r = await execa("gh", ["api", `repos/${REPO}/environments/production`, "--jq", ".protection_rules | length"], {
      reject: false,
      env: { PATH: `${dir}/bin:${process.env.PATH}`, FAKE_GH_STATE: stateFile },
    });
    edit((s) => delete s.environments);
    const missing = await execa("gh", ["api", `repos/${REPO}/environments/production`, "--jq", ".protection_rules | length"], {
      reject: false,
      env: { PATH: `${dir}/bin:${process.env.PATH}`, FAKE_GH_STATE: stateFile },
    });
    expect([r.exitCode, r.stdout]).toEqual([0, "1"]);
    expect(missing.exitCode).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ message: "Not Found", status: "404" });
    expect(missing.stderr).toBe("gh: Not Found (HTTP 404)");
  });

  it("production is refused when its environment is missing (404), unreadable (403) or answers no count; only a number > 0 passes", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    edit((s) => delete s.environments.production);
    const missing = await verify({ INPUT_REF: sha("a") });
    expect(missing.exitCode).toBe(1);
    expect(missing.all).toMatch(/::error::gh api repos\/acme\/shop\/environments\/production failed: gh: Not Found \(HTTP 404\)/);
    expect(missing.all).toMatch(/::error::cannot read the production environment's protection rules \(unreadable\)/);
    expect(missing.outputs.digest).toBeUndefined();
    edit((s) => {
      s.environments.production = { protection_rules: [{ id: 1, type: "required_reviewers", reviewers: [] }] };
      s.forbidden = ["^environments/"];
    });
    const forbidden = await verify({ INPUT_REF: sha("a") });
    expect(forbidden.exitCode).toBe(1);
    expect(forbidden.all).toMatch(/Resource not accessible by integration \(HTTP 403\)/);
    edit((s) => {
      s.forbidden = [];
      s.environments.production = { protection_rules: [{ id: 1, type: "wait_timer" }] };
    });
    expect((await verify({ INPUT_REF: sha("a") })).all).toMatch(/the production environment has no required reviewers/);
    edit((s) => (s.environments.production = { protection_rules: [{ id: 1, type: "required_reviewers", reviewers: [] }] }));
    expect((await verify({ INPUT_REF: sha("a") })).exitCode).toBe(0);
  });

  it("a token that cannot read deployments fails the gate naming GitHub's answer, never as 'not passed' or a pass", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    edit((s) => (s.forbidden = ["^deployments"]));
    const r = await verify({ INPUT_REF: sha("a") });
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(/::error::cannot read the staging deployments of acme\/shop/);
    expect(r.all).not.toMatch(/has not passed staging/);
    expect(r.outputs.digest).toBeUndefined();
  });

  it("a production rollback closes the gate too: the digest it undid is refused for production again", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    await deploy("staging", sha("b"), digest("b"), "success");
    await deploy("production", sha("a"), digest("a"), "success");
    await deploy("production", sha("b"), digest("b"), "success");
    expect(await rollback("production")).toMatch(new RegExp(`^marked GitHub deployment \\d+ \\(${sha("b")}, `));
    const r = await verify({ INPUT_REF: sha("b") });
    expect(r.exitCode).toBe(1);
    expect(r.all).toMatch(new RegExp(`::error::${sha("b")} was rolled back on production \\(rolled back: by oncall in run 77, `));
    expect((await verify({ INPUT_REF: sha("a") })).outputs.digest).toBe(digest("a"));
  });

  it("a rollback during a deploy in flight marks nothing when the host's lock refuses it, and later marks what the host undid", async () => {
    const { markedRollback } = await import("../dagger/src/commands/github.js");
    await deploy("staging", sha("a"), digest("a"), "success");
    // b's deploy job is running: its record exists, with no status yet.
    const inFlight = await run(RECORD, { SHA: sha("b"), ENVIRONMENT: "staging", DIGEST: digest("b") });
    const api = await serveGitHub(stateFile, "127.0.0.1", "fake-token");
    const mark = (out: string) => markRolledBack({ api: api.url, repository: REPO, token: "fake-token" }, "staging", JSON.parse(out), "by oncall");
    try {
      const refused = await markedRollback(mark, async () => Promise.reject(new Error("another release operation holds the deploy lock (pid=42 op=deploy)"))).catch((e: Error) => e.message);
      expect(refused).toMatch(/holds the deploy lock/);
      // a, the release before, is not marked: the gate still lets it through.
      expect(state().deployments.find((d: any) => d.sha === sha("a")).statuses.at(-1).state).toBe("success");
      expect((await verify({ INPUT_REF: sha("a") })).outputs.digest).toBe(digest("a"));
      // b's deploy finishes; now the host rolls b back to a, and says so.
      await run(MARK, { ID: inFlight.outputs.id!, STATUS: "success", APP_URL: "https://shop.example" });
      const out = await markedRollback(mark, async () => JSON.stringify({ returnedTo: sha("a"), undid: sha("b") }));
      expect(out).toMatch(new RegExp(`^marked GitHub deployment ${inFlight.outputs.id} \\(${sha("b")}, `));
      expect((await verify({ INPUT_REF: sha("b") })).all).toMatch(/was rolled back on staging/);
    } finally {
      await api.close();
    }
  });

  it("the deploy job checks the gate again after the approval wait: a staging rollback meanwhile stops it before the host", async () => {
    await deploy("staging", sha("a"), digest("a"), "success");
    await deploy("staging", sha("b"), digest("b"), "success");
    const verified = await verify({ INPUT_REF: sha("b") });
    expect(verified.outputs.digest).toBe(digest("b"));
    expect((await run(RECHECK, { SHA: sha("b"), DIGEST: digest("b") })).exitCode).toBe(0);
    // While the run waits for a reviewer, on-call rolls staging back.
    await rollback("staging");
    const after = await run(RECHECK, { SHA: sha("b"), DIGEST: digest("b") });
    expect(after.exitCode).toBe(1);
    expect(after.all).toMatch(/was rolled back on staging/);
    const job = workflow("deploy.yml").jobs.deploy;
    const names = (job.steps as any[]).map((st) => st.name ?? st.uses);
    expect(names.findIndex((n) => /^Check the gate again/.test(n))).toBeLessThan(names.findIndex((n) => /^Record the deploy/.test(n)));
    expect(job.environment.deployment).toBe(false);
  });

  it("staging moves only forward: a re-run of an old ci run is refused, naming what staging runs; a newer commit passes", async () => {
    await deploy("staging", sha("b"), digest("b"), "success");
    edit((s) => {
      s.artifacts = { 41: { [`release-${sha("a")}`]: { "release.json": JSON.stringify({ commit: sha("a"), digest: digest("a") }) } }, 42: { [`release-${sha("c")}`]: { "release.json": JSON.stringify({ commit: sha("c"), digest: digest("c") }) } } };
      s.compare = { [`${sha("b")}...${sha("a")}`]: "behind", [`${sha("b")}...${sha("c")}`]: "ahead" };
    });
    const rerun = await run(VERIFY, { EVENT: "workflow_run", RUN_ID: "41", RUN_SHA: sha("a"), INPUT_CANARY: "", INPUT_CANARY_STEP: "60" });
    expect(rerun.exitCode).toBe(1);
    expect(rerun.all).toMatch(new RegExp(`::error::${sha("a")} is older than ${sha("b")}, which staging runs .*run rollback\\.yml for staging`));
    const newer = await run(VERIFY, { EVENT: "workflow_run", RUN_ID: "42", RUN_SHA: sha("c"), INPUT_CANARY: "", INPUT_CANARY_STEP: "60" });
    expect(newer.exitCode, newer.all).toBe(0);
    expect(newer.outputs).toMatchObject({ sha: sha("c"), digest: digest("c"), environment: "staging" });
  });

  it("the facts never carry an error body: an unreadable approval or changelog is empty, with a warning", async () => {
    await deploy("production", sha("a"), digest("a"), "success");
    edit((s) => {
      s.approvals = { 5: [{ user: { login: "alice" }, state: "approved" }] };
    });
    const good = await run(FACTS, { SHA: sha("c"), ENVIRONMENT: "production", RUN_ID: "5" });
    expect(good.exitCode, good.all).toBe(0);
    expect(good.outputs.approver).toBe("alice");
    edit((s) => (s.forbidden = ["^actions/runs/5/approvals$", "^compare/"]));
    const bad = await run(FACTS, { SHA: sha("c"), ENVIRONMENT: "production", RUN_ID: "5" });
    expect(bad.exitCode, bad.all).toBe(0);
    expect(bad.outputs.approver).toBe("");
    expect(bad.all).toMatch(/::warning::cannot read who approved run 5/);
    expect(bad.all).toMatch(/::warning::cannot read the commits since a{40}/);
    expect(JSON.stringify(bad.outputs)).not.toMatch(/Not Found|not accessible|documentation_url/);
  });

  it("the record step fails with no id when GitHub refuses the deployment, so nothing is marked", async () => {
    edit((s) => (s.forbidden = ["^deployments$"]));
    const record = await run(RECORD, { SHA: sha("a"), ENVIRONMENT: "staging", DIGEST: digest("a") });
    expect(record.exitCode).toBe(1);
    expect(record.outputs.id).toBeUndefined();
    expect(record.all).toMatch(/Resource not accessible by integration/);
  });

  it("README, RUNBOOK and the module agree: a rollback whose GitHub mark failed is marked by hand, never run again", async () => {
    const { markedRollback } = await import("../dagger/src/commands/github.js");
    const err = await markedRollback(async () => Promise.reject(new Error("GitHub is down")), async () => "rolled back").catch((e: Error) => e.message);
    expect(err).toMatch(/do not roll back again: mark it by hand, RUNBOOK\.md §2 "When GitHub did not hear of the rollback"/);
    const readme = readFileSync(join(repoRoot, "README.md"), "utf8");
    const runbook = readFileSync(join(repoRoot, "RUNBOOK.md"), "utf8");
    expect(runbook).toMatch(/\*\*When GitHub did not hear of the rollback\*\*[\s\S]{0,400}Do not roll back again/);
    expect(readme).toMatch(/do \*\*not\*\* run the rollback again/);
    expect(readme).not.toMatch(/run the rollback again once GitHub answers|idempotent on both sides/);
  });

  it("rollback.yml refuses a dispatch from another branch before anything runs with the rollback key", async () => {
    const feature = await run(ROLLBACK_INPUTS, { ENVIRONMENT: "production", TAG: "", RUN_REF: "refs/heads/feature" });
    expect(feature.exitCode).toBe(1);
    expect(feature.all).toMatch(/::error::rollback\.yml was dispatched from refs\/heads\/feature; dispatch it from main/);
    expect((await run(ROLLBACK_INPUTS, { ENVIRONMENT: "production", TAG: "", RUN_REF: "refs/heads/main" })).exitCode).toBe(0);
    const steps = workflow("rollback.yml").jobs.rollback.steps as any[];
    expect(steps[0].name).toMatch(/^Validate the inputs/);
  });
});

describe("the changelog and rollbacks (deploy.yml facts, rollback.yml)", () => {
  it("the changelog starts from the last successful deploy that was not rolled back", async () => {
    await deploy("production", sha("a"), digest("a"), "success");
    await deploy("production", sha("b"), digest("b"), "success");
    expect(await rollback("production")).toMatch(new RegExp(`^marked GitHub deployment \\d+ \\(${sha("b")}, `));
    await deploy("production", sha("f"), digest("f"), "failure");
    const facts = await run(FACTS, { SHA: sha("c"), ENVIRONMENT: "production", RUN_ID: "5" });
    expect(facts.exitCode, facts.all).toBe(0);
    expect(calls().filter((c) => /\/compare\//.test(c[1] ?? "")).map((c) => c[1])).toEqual([`repos/${REPO}/compare/${sha("a")}...${sha("c")}`]);
  });

  it("a rollback to a named commit marks every live release after it, and nothing before it", async () => {
    const a = await deploy("staging", sha("a"), digest("a"), "success");
    const b = await deploy("staging", sha("b"), digest("b"), "success");
    const c = await deploy("staging", sha("c"), digest("c"), "success");
    expect((await rollback("staging", `${sha("a")}@${digest("a")}`)).split("\n")).toHaveLength(2);
    const newest = (id: number) => state().deployments.find((d: any) => d.id === id).statuses.at(-1);
    expect([b, c].map((id) => [newest(id).state, newest(id).description])).toEqual([
      ["failure", "rolled back: by oncall in run 77"],
      ["failure", "rolled back: by oncall in run 77"],
    ]);
    expect(newest(a).state).toBe("inactive");
    expect((await run("bash .github/scripts/deployments.sh current staging", {})).all.trim()).toMatch(new RegExp(`^${a} ${sha("a")} ${digest("a")}$`));
  });

  it("rollback.yml marks through `dagger call rollback` (the one writer of the mark), with the job's token and run", () => {
    const job = workflow("rollback.yml").jobs.rollback;
    const call = (job.steps as any[]).find((st) => /dagger --progress plain call/.test(st.run ?? "")).run as string;
    expect(call).toMatch(/--github-token=env:GH_TOKEN --github-repository="\$REPO" --github-run="\$RUN_ID"/);
    expect(job.env.GH_TOKEN).toBe("${{ github.token }}");
    expect(job.permissions.deployments).toBe("write");
    expect((job.steps as any[]).filter((st) => /deployments\/|statuses/.test(st.run ?? ""))).toEqual([]);
  });

  it("a rollback to a release this environment has no record of (deployed by hand) marks only the one serving", async () => {
    const a = await deploy("production", sha("a"), digest("a"), "success");
    const b = await deploy("production", sha("b"), digest("b"), "success");
    expect(await rollback("production", sha("9"))).toMatch(new RegExp(`^marked GitHub deployment ${b} `));
    expect(state().deployments.find((d: any) => d.id === a).statuses.at(-1).state).toBe("success");
  });

  it("more than a page of deployments: the gate and the mark follow GitHub's Link header", async () => {
    const old = await deploy("staging", sha("a"), digest("a"), "success");
    // 101 newer staging deployments: with 100 a page, the older commit's is on page 2.
    const s = state();
    for (let i = 0; i < 101; i++) {
      const id = s.nextId++;
      s.deployments.push({ ...s.deployments[0], id, sha: i.toString(16).padStart(40, "0"), statuses: [{ id: s.nextId++, state: "failure", created_at: "2026-12-01T01:00:00Z", description: "" }] });
    }
    writeFileSync(stateFile, JSON.stringify(s));
    const r = await verify({ INPUT_REF: sha("a") });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.outputs.digest).toBe(digest("a"));
    const current = await run("bash .github/scripts/deployments.sh current staging", {});
    expect(current.all.trim()).toBe(`${old} ${sha("a")} ${digest("a")}`);
    // None of the 101 served: the mark walks to page 2 and undoes the older commit's.
    expect(await rollback("staging")).toMatch(new RegExp(`^marked GitHub deployment ${old} `));
    expect(calls().some((c) => /[?&]page=2\b/.test(c[1] ?? ""))).toBe(true);
  });

  it("a malformed environment, repository, API address or commit never reaches the API", async () => {
    for (const args of ["current 'prod;id'", "passed-staging 'HEAD'"]) {
      const r = await run(`bash .github/scripts/deployments.sh ${args}`, {});
      expect(r.exitCode, args).toBe(1);
      expect(r.all.trim().split("\n"), args).toHaveLength(1);
      expect(r.all).toMatch(/::error::invalid (environment|commit SHA)/);
    }
    const mark = (ctx: Partial<{ api: string; repository: string }>, environment: string) =>
      markRolledBack({ api: "https://api.github.com", repository: REPO, token: "t", ...ctx }, environment, {}, "x", () => {
        throw new Error("reached the API");
      });
    await expect(mark({}, "prod;id")).rejects.toThrow(/^marking the GitHub deployment needs the environment/);
    await expect(mark({ repository: "acme/shop;id" }, "staging")).rejects.toThrow(/^invalid GitHub repository "acme\/shop;id": use owner\/name/);
    await expect(mark({ api: "http://api.example.com" }, "staging")).rejects.toThrow(/^invalid GitHub API URL .*use https:\/\//);
    expect(calls().filter((c) => c.length)).toEqual([]);
  });
});
