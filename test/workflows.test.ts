/** The GitHub Actions workflows: actionlint (with shellcheck), and the release gating they promise. */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { repoRoot } from "./support/database.js";
import { toolPath } from "./support/tools.js";

const dir = join(repoRoot, ".github/workflows");
const files = readdirSync(dir).filter((f) => f.endsWith(".yml"));
const raw = (f: string) => readFileSync(join(dir, f), "utf8");
const wf = (f: string) => parse(raw(f));
const engineVersion = JSON.parse(readFileSync(join(repoRoot, "dagger.json"), "utf8")).engineVersion.replace(/^v/, "");

describe("workflows", () => {
  it("pass actionlint", async () => {
    const r = await execa(toolPath("actionlint"), files.map((f) => join(dir, f)), { reject: false, all: true });
    expect(r.exitCode, String(r.all)).toBe(0);
  });

  it("pin every action to a commit and the Dagger CLI to the module's engine version", () => {
    for (const f of files) {
      for (const [, ref] of raw(f).matchAll(/uses:\s*(\S+)/g)) expect(ref, `${f}: ${ref}`).toMatch(/@[0-9a-f]{40}$/);
      for (const [, v] of raw(f).matchAll(/version:\s*"([^"]+)"/g)) expect(v, f).toBe(engineVersion);
    }
  });

  it("grant least privilege: nothing at the top, explicit permissions on every job", () => {
    for (const f of files) {
      expect(wf(f).permissions, f).toEqual({});
      for (const [name, job] of Object.entries<any>(wf(f).jobs)) expect(job.permissions, `${f}/${name}`).toBeTypeOf("object");
    }
  });

  it("ci runs `dagger call ci` on every push and pull request, publishing and uploading SARIF only on main", () => {
    const ci = wf("ci.yml");
    expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
    const steps = ci.jobs.ci.steps;
    const call = steps.find((s: any) => String(s.uses).startsWith("dagger/dagger-for-github") && /^ci /.test(s.with.args));
    expect(call.with.args).toMatch(/--version=\$\{\{ github.sha \}\}/);
    expect(call.with.args).toMatch(/env.PUBLISH == 'true' && format\('--registry=ghcr.io/);
    expect(ci.jobs.ci.env.PUBLISH).toContain("refs/heads/main");
    const sarif = steps.find((s: any) => String(s.uses).startsWith("github/codeql-action/upload-sarif"));
    expect(sarif.if).toContain("env.PUBLISH == 'true'");
  });

  it("deploy runs only for a commit whose ci passed, staging automatically and production behind its environment, serialised", () => {
    const deploy = wf("deploy.yml");
    expect(deploy.on.workflow_run).toEqual({ workflows: ["ci"], types: ["completed"], branches: ["main"] });
    expect(Object.keys(deploy.on)).toEqual(expect.arrayContaining(["release", "workflow_dispatch"]));
    expect(deploy.jobs.verify.if).toContain("github.event.workflow_run.conclusion == 'success'");
    const check = deploy.jobs.verify.steps[0].run as string;
    expect(check).toMatch(/actions\/workflows\/ci\.yml\/runs\?head_sha=\$sha&event=push&status=success/);
    expect(check).toMatch(/workflow_run\) sha=\$RUN_SHA; environment=staging/);
    expect(check).toMatch(/release\) .*environment=production/);
    expect(check).toMatch(/workflow_dispatch\) .*environment=production/);
    const job = deploy.jobs.deploy;
    expect(job.needs).toBe("verify");
    expect(job.environment.name).toBe("${{ needs.verify.outputs.environment }}");
    expect(job.concurrency).toEqual({ group: "deploy-${{ needs.verify.outputs.environment }}", "cancel-in-progress": false });
    const names = job.steps.map((s: any) => s.name ?? s.uses);
    expect(names.indexOf("dagger call deploy")).toBeLessThan(names.indexOf("Smoke check /health reports the new version"));
    expect(job.steps.find((s: any) => s.name === "dagger call deploy").with.args).toMatch(/--known-hosts=env:SSH_KNOWN_HOSTS/);
  });

  it("rollback is a manual dispatch with an optional tag, in the same concurrency group as deploys", () => {
    const rollback = wf("rollback.yml");
    expect(Object.keys(rollback.on)).toEqual(["workflow_dispatch"]);
    expect(rollback.on.workflow_dispatch.inputs.tag.required).toBe(false);
    expect(rollback.jobs.rollback.concurrency.group).toBe("deploy-${{ inputs.environment }}");
    expect(rollback.jobs.rollback.steps.some((s: any) => /^rollback /.test(s.with?.args ?? ""))).toBe(true);
  });

  it("notify Slack only when the webhook secret is set, with SHA, environment and actor", () => {
    const deploy = raw("deploy.yml");
    expect(deploy).toMatch(/if: \$\{\{ env.SLACK_WEBHOOK_URL != '' \}\}/);
    expect(deploy).toMatch(/Deploy of \$SHA to \$ENVIRONMENT by \$ACTOR: \$STATUS/);
  });
});
