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

  it("splice no expression into a shell: run scripts and the Dagger action's args take values through env only", () => {
    for (const f of files) expect(splicedExpressions(wf(f)), f).toEqual([]);
    // The check itself finds what rollback.yml once did: a dispatched tag pasted into the action's bash line.
    const spliced = { jobs: { r: { steps: [{ uses: "dagger/dagger-for-github@x", with: { args: "rollback ${{ inputs.tag != '' && format('--tag={0}', inputs.tag) || '' }}" } }, { run: "echo ${{ github.event.head_commit.message }}" }] } } };
    expect(splicedExpressions(spliced)).toEqual(["r step 1 with.args", "r step 2 run"]);
  });

  it("ci runs `dagger call ci` read-only on branch pushes (not tags) and pull requests; only main's publish job may write, and it hands on the digest", () => {
    const ci = wf("ci.yml");
    expect(ci.on.push).toEqual({ branches: ["**"] });
    expect(Object.keys(ci.on)).toEqual(expect.arrayContaining(["push", "pull_request"]));
    expect(ci.jobs.ci.permissions).toEqual({ contents: "read" });
    expect(ci.jobs.integration.permissions).toEqual({ contents: "read" });
    const steps: any[] = ci.jobs.ci.steps;
    expect(steps.find((s) => /call ci/.test(s.run ?? "")).run).toBe('dagger --progress plain call ci --version="$GITHUB_SHA"');
    // The plan's base commit comes with the checkout's full history, not a credential-less fetch.
    expect(steps[0].with).toMatchObject({ "fetch-depth": 0, "persist-credentials": false });
    const plan = steps.find((s) => /migration-plan/.test(s.run ?? "")).run;
    expect(plan).not.toMatch(/git fetch/);
    expect(plan).toMatch(/::error::the base commit .* is not in this repository's history/);
    expect(plan).toMatch(/call migration-plan --since="\$since" export --path=migration-plan\.sql/);
    expect(steps.some((s) => s.with?.path === "migration-plan.sql")).toBe(true);

    const publish = ci.jobs.publish;
    expect(publish.needs).toBe("ci");
    expect(publish.if).toBe("${{ github.event_name == 'push' && github.ref == 'refs/heads/main' }}");
    expect(publish.permissions).toEqual({ contents: "read", packages: "write", "security-events": "write", actions: "read" });
    const pub: any[] = publish.steps;
    const call = pub.find((s) => s.id === "publish");
    expect(call.run).toMatch(/call publish --registry=ghcr\.io/);
    expect(call.run).toMatch(/@sha256:\[0-9a-f\]\{64\}\$ \]\]/);
    expect(publish.outputs).toEqual({ image: "${{ steps.publish.outputs.image }}", digest: "${{ steps.publish.outputs.digest }}" });
    const record = pub.find((s) => String(s.uses).startsWith("actions/upload-artifact") && s.with.path === "release.json");
    expect(record.with.name).toBe("release-${{ github.sha }}");
    // The reports describe the published image, not a `version=dev` rebuild.
    expect(pub.find((s) => /scan-reports/.test(s.run ?? "")).run).toMatch(/scan-reports --image="\$IMAGE"/);
    const sarif = pub.find((s) => String(s.uses).startsWith("github/codeql-action/upload-sarif"));
    expect(sarif["continue-on-error"]).toBe(true);
    // No job but publish holds a write scope.
    for (const [name, job] of Object.entries<any>(ci.jobs)) if (name !== "publish") expect(Object.values(job.permissions), name).not.toContain("write");
    // upload-artifact on a current major (v6, node24), pinned by commit.
    for (const f of files) for (const [, ref] of raw(f).matchAll(/uses:\s*actions\/upload-artifact@(\S+) # (v\d+)/g)) expect(raw(f), ref).toContain(`@${ref} # v6`);
  });

  it("integration runs `npm test` as root with the runner's PATH (sudo's secure_path would drop it), CI=true, and only the host engine cases allowed to skip", () => {
    const step = wf("ci.yml").jobs.integration.steps.at(-1);
    expect(step.run).toContain("npm test");
    expect(step.run).toMatch(/^sudo env "PATH=\$PATH" "HOME=\$HOME" CI=true /);
    expect(step.run).not.toContain("--preserve-env");
    expect(step.env.SLIPWAY_ALLOW_SKIP).toBe("dagger-engine-host");
  });

  it("deploy promotes a digest: staging from ci's record, production only from main, not pre-releases, and only what passed staging", () => {
    const deploy = wf("deploy.yml");
    expect(deploy.on.workflow_run).toEqual({ workflows: ["ci"], types: ["completed"], branches: ["main"] });
    expect(Object.keys(deploy.on)).toEqual(expect.arrayContaining(["release", "workflow_dispatch"]));
    const when = deploy.jobs.verify.if as string;
    expect(when).toContain("github.event.workflow_run.conclusion == 'success'");
    expect(when).toContain("!github.event.release.prerelease");
    const resolve = (deploy.jobs.verify.steps as any[]).find((s) => s.id === "resolve").run as string;
    expect(resolve).toMatch(/gh run download "\$RUN_ID" --repo "\$REPO" --name "release-\$sha"/);
    expect(resolve).toMatch(/compare\/main\.\.\.\$sha/);
    expect(resolve).toMatch(/digest=\$\(bash \.github\/scripts\/deployments\.sh passed-staging "\$sha"\)/);
    expect(resolve).toMatch(/valid_digest "\$digest" \|\| fail/);
    const job = deploy.jobs.deploy;
    expect(job.needs).toBe("verify");
    expect(job.environment.name).toBe("${{ needs.verify.outputs.environment }}");
    expect(job.concurrency).toEqual({ group: "deploy-${{ needs.verify.outputs.environment }}", "cancel-in-progress": false });
    const steps: any[] = job.steps;
    const call = steps.find((s) => /dagger --progress plain call/.test(s.run ?? ""));
    expect(call.run).toMatch(/--tag="\$SHA" --digest="\$DIGEST" --smoke-url="\$APP_URL"/);
    expect(call.run).toMatch(/--known-hosts=env:SSH_KNOWN_HOSTS/);
    expect(call.run).toMatch(/--slack-webhook=env:SLACK_WEBHOOK_URL/);
    // The staging record carries the digest, and is marked success only when the job (deploy + smoke) passed.
    expect(steps.find((s) => s.id === "record").run).toMatch(/payload: \{digest: \$digest\}/);
    expect(steps.at(-1).if).toContain("always()");
    expect(steps.at(-1).run).toMatch(/state=\$\(\[ "\$STATUS" = success \]/);
    // Slack is the pipeline's job now: no curl in a workflow can fail a release.
    expect(raw("deploy.yml")).not.toMatch(/curl -f/);
  });

  it("deploy's canary input reaches `dagger call deploy` only as rising percents, checked before the job runs", async () => {
    const deploy = wf("deploy.yml");
    expect(Object.keys(deploy.on.workflow_dispatch.inputs)).toEqual(expect.arrayContaining(["canary", "canary_step"]));
    const resolve = (deploy.jobs.verify.steps as any[]).find((s) => s.id === "resolve").run as string;
    // The validator itself, with the rules it sources (scripts/lib/contract.sh), run by bash on good and bad values.
    expect(resolve).toContain("source scripts/lib/contract.sh");
    expect(deploy.jobs.verify.steps[0].with["sparse-checkout"]).toContain("scripts/lib");
    const validator = resolve.match(/^ *valid_canary\(\) \{\n[\s\S]*?\n *\}$/m)![0];
    const valid = async (v: string) => (await execa("bash", ["-c", `source scripts/lib/contract.sh\n${validator}\nvalid_canary "$1"`, "check", v], { reject: false, cwd: repoRoot })).exitCode === 0;
    for (const good of ["10", "10,50", "1,2,99"]) expect(await valid(good), good).toBe(true);
    for (const bad of ["50,10", "0,10", "100", "10,10", "10,", "10;id", "$(id)", "10 50"]) expect(await valid(bad), bad).toBe(false);
    expect(resolve).toMatch(/valid_canary "\$canary" \|\| fail/);
    const call = (deploy.jobs.deploy.steps as any[]).find((s) => /dagger --progress plain call/.test(s.run ?? ""));
    expect(call.run).toContain('args+=(--canary="$CANARY" --canary-step="$CANARY_STEP")');
    expect(deploy.jobs.deploy.env.CANARY).toBe("${{ needs.verify.outputs.canary }}");
  });

  it("rollback starts at once: its own concurrency group and an environment without reviewers, inputs validated first", () => {
    const rollback = wf("rollback.yml");
    expect(Object.keys(rollback.on)).toEqual(["workflow_dispatch"]);
    expect(rollback.on.workflow_dispatch.inputs.tag.required).toBe(false);
    const job = rollback.jobs.rollback;
    expect(job.concurrency.group).toBe("rollback-${{ inputs.environment }}");
    expect(job.concurrency.group).not.toBe(wf("deploy.yml").jobs.deploy.concurrency.group);
    expect(job.environment.name).toBe("${{ inputs.environment }}-rollback");
    expect(job.steps[0].name).toMatch(/^Validate the inputs/);
    expect(job.steps[0].run).toContain("(@sha256:[0-9a-f]{64})?$");
    expect(job.steps.at(-1).run).toMatch(/args=\(--host="\$DEPLOY_HOST" [^)]*\n\s+rollback /);
    // `dagger call rollback` marks the undone release before the host is touched (test/gate.test.ts
    // runs the mark; test/dagger-engine.test.ts runs it through the engine).
    expect(job.permissions).toEqual({ contents: "read", deployments: "write" });
    expect(job.steps.at(-1).run).toContain("--github-token=env:GH_TOKEN");
  });
});

/** Every place a workflow pastes a `${{ }}` expression into a shell: run scripts, and args/call of the Dagger action. */
function splicedExpressions(workflow: any): string[] {
  const found: string[] = [];
  for (const [name, job] of Object.entries<any>(workflow.jobs ?? {})) {
    (job.steps ?? []).forEach((step: any, i: number) => {
      const where = `${name} step ${i + 1}`;
      if (/\$\{\{/.test(step.run ?? "")) found.push(`${where} run`);
      for (const key of ["args", "call"]) if (/\$\{\{/.test(String(step.with?.[key] ?? ""))) found.push(`${where} with.${key}`);
    });
  }
  return found;
}
