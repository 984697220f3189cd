import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { BUNDLE_ENTRIES } from "../../src/commands/contract.js";
import { DEPLOY_BUNDLE, deployArgs, kpiArgs, missingConnection, remoteScriptCommand, remoteUnpackCommand, rollbackCall, shipArgv, sshArgv, type SshTarget, stagingDir, targetArgs } from "../../src/commands/ssh.js";

const target: SshTarget = { host: "app.example.com", user: "deploy", port: 2222, keyPath: "/k", knownHostsPath: "/kh" };

describe("ssh command lines", () => {
  it("verifies host keys against the given known_hosts and never trusts on first use", () => {
    const argv = sshArgv(target, "true");
    expect(argv.join(" ")).toContain("-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/kh");
    expect(argv.join(" ")).not.toMatch(/StrictHostKeyChecking=(no|accept-new)/);
    expect(argv).toContain("BatchMode=yes");
    expect(argv.join(" ")).toContain("-o ServerAliveInterval=15 -o ServerAliveCountMax=4");
    expect(argv.slice(-3)).toEqual(["deploy@app.example.com", "--", "true"]);
    expect(argv.slice(argv.indexOf("-p"), argv.indexOf("-p") + 2)).toEqual(["-p", "2222"]);
  });

  it("builds the deploy command with every value quoted", () => {
    expect(remoteScriptCommand({ dir: "/opt/slipway", script: "deploy", tag: "v2", args: ["--timeout", "60"] })).toBe(
      "cd '/opt/slipway' && './scripts/deploy.sh' '--timeout' '60' 'v2'",
    );
    expect(remoteScriptCommand({ dir: "/srv/app", script: "rollback" })).toBe("cd '/srv/app' && './scripts/rollback.sh'");
  });

  it.each([
    [{ tag: "v1; touch /tmp/pwned" }, /invalid tag/],
    [{ dir: "/opt/$(id)" }, /invalid dir/],
    [{ tag: "v1\nid" }, /invalid tag/],
    [{ args: ["--timeout", "60\nid"] }, /invalid argument/],
  ])("refuses injection %j", (bad, message) => {
    expect(() => remoteScriptCommand({ dir: "/opt/slipway", script: "deploy", tag: "v2", ...bad })).toThrow(message);
  });

  it("ships what the host script installs: one list, scripts/lib/contract.sh's BUNDLE_ENTRIES", () => {
    expect(DEPLOY_BUNDLE).toBe(BUNDLE_ENTRIES);
    const lib = readFileSync(fileURLToPath(new URL("../../../scripts/lib.sh", import.meta.url)), "utf8");
    expect(lib).not.toMatch(/^BUNDLE_ENTRIES=/m);
  });

  it("stages the bundle beside the installed files and runs the staged deploy.sh, which installs it", () => {
    expect(DEPLOY_BUNDLE).not.toContain(".env");
    const bundle = stagingDir("0f1e2d3c-aaaa-bbbb-cccc-000011112222");
    expect(bundle).toBe("incoming/0f1e2d3c-aaaa-bbbb-cccc-000011112222");
    expect(remoteUnpackCommand("/opt/slipway", bundle)).toBe(
      "rm -rf '/opt/slipway/incoming/0f1e2d3c-aaaa-bbbb-cccc-000011112222' && mkdir -p '/opt/slipway/incoming/0f1e2d3c-aaaa-bbbb-cccc-000011112222' && tar -C '/opt/slipway/incoming/0f1e2d3c-aaaa-bbbb-cccc-000011112222' -xf -",
    );
    expect(remoteScriptCommand({ dir: "/opt/slipway", script: "deploy", tag: "v2", bundle, args: ["--timeout", "60"] })).toBe(
      `cd '/opt/slipway' && './${bundle}/scripts/deploy.sh' '--bundle' '${bundle}' '--timeout' '60' 'v2'`,
    );
    const argv = shipArgv(target, "/bundle", "/opt/slipway", bundle);
    expect(argv.slice(0, 4)).toEqual(["bash", "-o", "pipefail", "-c"]);
    expect(argv[4]).toMatch(/^'tar' '-C' '\/bundle' '-cf' '-' 'docker-compose.prod.yml' .* \| 'ssh' /);
    for (const bad of ["../x", "ABC", "a b", "short"]) expect(() => stagingDir(bad), bad).toThrow(/^invalid bundle id/);
  });
});

describe("status.sh --kpi flags", () => {
  it("pass a duration, and refuse anything else before it reaches a shell", () => {
    expect(kpiArgs("15m")).toEqual(["--kpi", "--since", "15m"]);
    expect(kpiArgs("2h")).toEqual(["--kpi", "--since", "2h"]);
    for (const bad of ["", "15", "15 m", "15m;id", "$(id)", "1d"]) expect(() => kpiArgs(bad), bad).toThrow(/invalid since/);
  });
});

describe("deploy.sh flags", () => {
  it("pass the guard only when asked, leaving the host's GUARD_SECONDS in charge otherwise", () => {
    expect(deployArgs(60, -1)).toEqual(["--timeout", "60"]);
    expect(deployArgs(60, 0)).toEqual(["--timeout", "60", "--guard", "0"]);
    expect(deployArgs(90, 45)).toEqual(["--timeout", "90", "--guard", "45"]);
    expect(() => deployArgs(60, 1.5)).toThrow(/invalid guard/);
    expect(() => deployArgs(60, -2)).toThrow(/invalid guard/);
    expect(() => deployArgs(0, 10)).toThrow(/invalid timeout/);
  });

  it("deployArgs passes canary steps as deploy.sh checks them", () => {
    expect(deployArgs(60, -1, { steps: "10,50", stepSeconds: 30, minRequests: 0 })).toEqual([
      "--timeout", "60", "--canary", "10,50", "--canary-step", "30", "--canary-min-requests", "0",
    ]);
    expect(deployArgs(60, -1, { steps: "", stepSeconds: 30, minRequests: 5 })).toEqual(["--timeout", "60"]);
    for (const steps of ["50,10", "0,10", "100", "10,10", "10;rm -rf /", " 10", "10,", "1,2,3,4,5,6,7,8,9,10,11"]) {
      expect(() => deployArgs(60, -1, { steps, stepSeconds: 60, minRequests: 20 }), steps).toThrow(/invalid canary/);
    }
    // What the deploy function sends: the whole remote command validates and quotes them.
    const args = deployArgs(60, -1, { steps: "10,50", stepSeconds: 30, minRequests: 20 });
    expect(remoteScriptCommand({ dir: "/opt/slipway", script: "deploy", tag: "v2", args })).toBe(
      "cd '/opt/slipway' && './scripts/deploy.sh' '--timeout' '60' '--canary' '10,50' '--canary-step' '30' '--canary-min-requests' '20' 'v2'",
    );
    expect(() => deployArgs(60, -1, { steps: "10", stepSeconds: 0, minRequests: 20 })).toThrow(/invalid canaryStep/);
    expect(() => deployArgs(60, -1, { steps: "10", stepSeconds: 60, minRequests: -1 })).toThrow(/invalid canaryMinRequests/);
  });
});

describe("the host, given once", () => {
  it("names every missing piece of the connection and where to set it, in one line", () => {
    expect(missingConnection({ host: "app.example.com", user: "deploy", sshKey: true, knownHosts: true })).toBe("");
    const msg = missingConnection({ host: "", user: "deploy", sshKey: false, knownHosts: true });
    expect(msg.split("\n")).toHaveLength(1);
    expect(msg).toMatch(/^no host to reach: give --host \/ SLIPWAY_HOST, --ssh-key \/ SLIPWAY_SSHKEY \(flags before the function/);
    expect(msg).toContain("environments/<name>/.env");
  });

  it("passes --target only as compose or swarm", () => {
    expect(targetArgs("")).toEqual([]);
    expect(targetArgs("swarm")).toEqual(["--target", "swarm"]);
    expect(() => targetArgs("swarm;id")).toThrow(/invalid target "swarm;id": use compose or swarm/);
  });
});

describe("rollbackCall: the rollback's host call, checked before the GitHub mark", () => {
  it("an empty tag is no tag (the release before), not a refused one", () => {
    const call = rollbackCall("/srv/app", "", "oncall", []);
    expect(call.tag).toBeUndefined();
    expect(remoteScriptCommand(call)).toBe("cd '/srv/app' && './scripts/rollback.sh' '--operator' 'oncall'");
    expect(rollbackCall("/srv/app", undefined, "", []).tag).toBeUndefined();
    expect(rollbackCall("/srv/app", "v1", "", []).tag).toBe("v1");
  });

  it("throws on a bad tag, operator or directory, so nothing is marked first", () => {
    for (const [tag, operator, dir] of [["v1;id", "", "/srv/app"], [" ", "", "/srv/app"], ["v1", "bob;id", "/srv/app"], ["v1", "", "relative/dir"], ["\u0000", "", "/srv/app"]]) {
      expect(() => rollbackCall(dir!, tag, operator!, []), `${tag} ${operator} ${dir}`).toThrow();
    }
  });
});

