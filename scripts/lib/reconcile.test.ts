/**
 * The repair plan (lib/reconcile.sh plan_repair) as a table: an observation of the host in, the
 * actions the next command takes out. Pure bash, no Docker: what is decided is tested here, and
 * test/crash.test.ts checks that status.sh's "next:" lines are what the next command then did.
 */
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

const D1 = `sha256:${"1".repeat(64)}`;
const D9 = `sha256:${"9".repeat(64)}`;

async function plan(observation: string[]): Promise<string[]> {
  const r = await execa("bash", ["-c", 'set -euo pipefail; source scripts/lib.sh; plan_repair <<<"$1"', "t", observation.join("\n")], { cwd: repoRoot });
  return r.stdout.split("\n").filter(Boolean);
}

const host = (...lines: string[]) => ["phase idle -", "keep warm", ...lines];

const cases: [string, string[], string[]][] = [
  ["one release, consistent", host("env a v1 slot-a", "route a", "last v1", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 -"), []],
  ["after a clean deploy: the release before stays warm", host("env b v2 slot-b", "route b", "last v2", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 v1"), []],
  ["after the quickstart's rollback: the undone release stays warm", host("env a v1 slot-a", "route a", "last v1", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v2", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 v1"), []],
  [
    "killed after .env named the new release, before the switch and its record",
    host("env b v2 slot-b", "route a", "last v1", "op deploy v2", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 v1"),
    ["switch b a p-api-b-1", "record deploy v2 v1"],
  ],
  [
    "killed while the new release started: it goes, the old one serves on",
    host("env a v1 slot-a", "route a", "last v1", "op deploy v2", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b starting true p-api-b-1 v2 -", "kept v2 -"),
    ["remove c2 p-api-b-1 b v2 starting"],
  ],
  [
    "a canary's share left by a kill: taken back, and the canary goes",
    host("env a v1 slot-a", "route a b 10", "last v1", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 -"),
    ["uncanary a b 10", "remove c2 p-api-b-1 b v2 healthy"],
  ],
  [
    "a guard switch-back killed before .env was written: never the release being reverted",
    ["phase reverting v2", "keep warm", "env b v2 slot-b", "route b", "last v1", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 v1"],
    ["switch a b p-api-a-1", "name v1 a v2 b", "remove c2 p-api-b-1 b v2 healthy"],
  ],
  [
    "killed in the guard window: the new release (never recorded) is kept and recorded as unjudged; the release before stays warm",
    ["phase guarding v3", "keep warm", "env b v3 slot-b", "route b", "last v2", "op deploy v3", "container c1 a healthy true p-api-a-1 v2 -", "kept v2 v1", "container c2 b healthy true p-api-b-1 v3 -", "kept v3 -"],
    ["record deploy v3 v2 unjudged"],
  ],
  [
    "killed in the guard window with KEEP_PREVIOUS=stopped: the release before is kept, stopped, not removed",
    ["phase guarding v3", "keep stopped", "env b v3 slot-b", "route b", "last v2", "op deploy v3", "container c1 a healthy true p-api-a-1 v2 -", "kept v2 v1", "container c2 b healthy true p-api-b-1 v3 -", "kept v3 -"],
    ["record deploy v3 v2 unjudged", "keep-old c1 p-api-a-1 stopped"],
  ],
  [
    "a reboot left .env and the profile apart: .env is made to name what serves",
    host("env a v1 slot-b", "route a", "last v1", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 -"),
    ["name v1 a v1 a"],
  ],
  [
    "nothing healthy: nothing is kept, nothing removed",
    host("env a v1 slot-a", "route a", "last v1", "container c1 a unhealthy true p-api-a-1 v1 -", "kept v1 -"),
    ["nothing-healthy"],
  ],
  [
    "KEEP_PREVIOUS=stopped and the kept release still runs: it is stopped",
    ["phase idle -", "keep stopped", "env b v2 slot-b", "route b", "last v2", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 v0", "container c2 b healthy true p-api-b-1 v2 -", "kept v2 v1"],
    ["keep-old c1 p-api-a-1 stopped"],
  ],
  [
    "a kept container whose image lacks the digest the history pins is not the release before",
    host("env b v2 slot-b", "route b", "last v2", `container c1 a healthy true p-api-a-1 v1 ${D9}`, "kept v1 -", "container c2 b healthy true p-api-b-1 v2 -", `kept v2 v1@${D1}`),
    ["remove c1 p-api-a-1 a v1 healthy"],
  ],
  [
    "no history yet (a host deployed before releases.log): the serving release is recorded as a repair",
    host("env a v1 slot-a", "route a", "last -", "container c1 a healthy true p-api-a-1 v1 -", "kept v1 -"),
    ["record repair v1 -"],
  ],
  ["no api container at all (the stack is down): nothing to do", host("env a v1 slot-a", "route a", "last v1"), []],
  [
    "registry releases, created pinned: the one before is kept by its pinned reference (no image digest looked up)",
    host(`env b v2@${D9} slot-b`, "route b", `last v2@${D9}`, `container c1 a healthy true p-api-a-1 v1@${D1} -`, "kept v1 -", `container c2 b healthy true p-api-b-1 v2@${D9} -`, `kept v2@${D9} v1@${D1}`),
    [],
  ],
];

describe("the repair plan (observe -> plan -> apply)", () => {
  it.each(cases)("%s", async (_name, observation, actions) => {
    expect(await plan(observation)).toEqual(actions);
  });

  it("every action has the words status.sh prints (what is wrong, what the next command will do)", async () => {
    const kinds = ["switch b a p-api-b-1", "uncanary a b 10", "name v1 a v2 b", "record deploy v2 v1", "remove c2 p-api-b-1 b v2 starting", "keep-old c1 p-api-a-1 stopped", "nothing-healthy"];
    for (const action of kinds) {
      const r = await execa("bash", ["-c", `set -euo pipefail; source scripts/lib.sh; drift_of_action ${action}; describe_action ${action}`], { cwd: repoRoot });
      const [drift, next] = r.stdout.split("\n");
      expect(drift, action).toMatch(/\S/);
      expect(next, action).toMatch(/\S/);
    }
  });
});
