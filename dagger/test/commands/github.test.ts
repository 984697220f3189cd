import { describe, expect, it } from "vitest";
import { markedRollback, markRolledBack, nextPage, payloadDigest, rollbackTarget, undone, undoneByHost, verdict, type Walked } from "../../src/commands/github.js";

const d = (id: number, c: string, live: boolean): Walked => ({ deployment: { id, sha: c.repeat(40), payload: { digest: `sha256:${c.repeat(64)}` } }, live });

describe("what a rollback undid (the GitHub deployments it marks)", () => {
  it("no target: the newest live deployment only", () => {
    expect(undone([d(5, "c", false), d(4, "b", true), d(3, "a", true)], undefined).map((x) => x.id)).toEqual([4]);
  });

  it("a target commit: every live deployment newer than its newest one, nothing older", () => {
    const walk = [d(6, "c", true), d(5, "f", false), d(4, "b", true), d(3, "a", false), d(2, "0", true)];
    expect(undone(walk, "a".repeat(40)).map((x) => x.id)).toEqual([6, 4]);
  });

  it("a target this environment has no record of (deployed by hand): the serving one, never the whole history", () => {
    expect(undone([d(6, "c", true), d(4, "b", true), d(3, "a", true)], "9".repeat(40)).map((x) => x.id)).toEqual([6]);
    expect(undone([], undefined)).toEqual([]);
  });

  it("by what the host did: every live one newer than the release it returned to; else the live one it undid; never a guess", () => {
    const walk = [d(7, "e", false), d(6, "c", true), d(5, "f", false), d(4, "b", true), d(3, "a", false)];
    // Returned to a (a commit GitHub has a record of): c and b, the live ones after it.
    expect(undoneByHost(walk, { returnedTo: "a".repeat(40), undid: "c".repeat(40) }).map((x) => x.id)).toEqual([6, 4]);
    // Returned to a release deployed by hand: the live record of what it undid, only.
    expect(undoneByHost(walk, { returnedTo: "v1-hotfix", undid: "b".repeat(40) }).map((x) => x.id)).toEqual([4]);
    // The host undid e, whose deploy never went live (a deploy in flight has no status): nothing else is marked.
    expect(undoneByHost(walk, { returnedTo: "v1-hotfix", undid: "e".repeat(40) })).toEqual([]);
    // A host naming no commit (a laptop's own tags): the one serving, as before.
    expect(undoneByHost(walk, { returnedTo: "v1", undid: "v2" }).map((x) => x.id)).toEqual([6]);
    expect(undoneByHost([], {})).toEqual([]);
  });

  it("a verdict is the newest decisive status: inactive (auto_inactive), pending and in_progress are not", () => {
    const at = "2026-12-01T00:00:00Z";
    expect(verdict([{ state: "inactive", created_at: at }, { state: "success", created_at: at }])?.state).toBe("success");
    expect(verdict([{ state: "failure", created_at: at, description: "rolled back: x" }, { state: "success", created_at: at }])?.state).toBe("failure");
    expect(verdict([{ state: "in_progress", created_at: at }, { state: "queued", created_at: at }])).toBeUndefined();
  });

  it("reads the digest from an object or a JSON-string payload, the target commit from tag[@digest]", () => {
    expect(payloadDigest({ id: 1, sha: "a", payload: { digest: "sha256:x" } })).toBe("sha256:x");
    expect(payloadDigest({ id: 1, sha: "a", payload: '{"digest":"sha256:y"}' })).toBe("sha256:y");
    expect(payloadDigest({ id: 1, sha: "a", payload: "not json" })).toBe("-");
    expect(payloadDigest({ id: 1, sha: "a" })).toBe("-");
    expect(rollbackTarget(`${"a".repeat(40)}@sha256:${"b".repeat(64)}`)).toBe("a".repeat(40));
    expect(rollbackTarget("v1.2.3")).toBeUndefined();
    expect(rollbackTarget(undefined)).toBeUndefined();
  });

  it("follows GitHub's Link header to the next page", () => {
    const link = '<https://api.github.com/repositories/1/deployments?per_page=100&page=2>; rel="next", <https://api.github.com/repositories/1/deployments?per_page=100&page=5>; rel="last"';
    expect(nextPage(link)).toBe("https://api.github.com/repositories/1/deployments?per_page=100&page=2");
    expect(nextPage('<https://api.github.com/x?page=1>; rel="prev"')).toBeUndefined();
    expect(nextPage(null)).toBeUndefined();
  });

  it("an API refusal fails in one line naming the permission, and never shows the token", async () => {
    const refuse = (async () => new Response(JSON.stringify({ message: "Resource not accessible by integration" }), { status: 403 })) as typeof fetch;
    const err = await markRolledBack({ api: "https://api.github.com", repository: "acme/shop", token: "ghs_secret" }, "production", { undid: "c".repeat(40) }, "x", refuse).catch((e: Error) => e);
    expect((err as Error).message).toBe("GitHub answered 403 to GET /repos/acme/shop/deployments: Resource not accessible by integration (the token needs deployments: write on the repository)");
    expect((err as Error).message).not.toContain("ghs_secret");
  });

  it("a 5xx or a dropped connection is tried again, three tries in all", async () => {
    let tries = 0;
    const flaky = (async () => {
      tries++;
      if (tries === 1) throw new TypeError("fetch failed");
      if (tries === 2) return new Response("{}", { status: 502 });
      return new Response("[]", { status: 200 });
    }) as typeof fetch;
    expect(await markRolledBack({ api: "https://api.github.com", repository: "acme/shop", token: "t" }, "staging", { undid: "c".repeat(40) }, "x", flaky)).toEqual([`no live GitHub deployment of staging is the release the host undid (${"c".repeat(40)}): nothing to mark`]);
    expect(tries).toBe(3);
  });
});

describe("a rollback with its mark", () => {
  it("marks first, then rolls the host; with no GitHub context, only rolls", async () => {
    const order: string[] = [];
    let seen = "";
    const out = await markedRollback(async (host) => (order.push("mark"), (seen = host), ["marked GitHub deployment 7"]), async () => (order.push("roll"), "rolled back to v1"));
    // The host first, under its lock; the mark is of what its output says it undid.
    expect(order).toEqual(["roll", "mark"]);
    expect(seen).toBe("rolled back to v1");
    expect(out).toBe("marked GitHub deployment 7\nrolled back to v1");
    expect(await markedRollback(undefined, async () => "rolled back to v1")).toBe("rolled back to v1");
  });

  it("GitHub down: the host is rolled back all the same, then the call fails naming the missing mark and the runbook", async () => {
    let rolled = false;
    const err = await markedRollback(async () => Promise.reject(new Error("GitHub did not answer GET /repos/acme/shop/deployments: TypeError: fetch failed")), async () => ((rolled = true), "rolled back to v1")).catch((e: Error) => e);
    expect(rolled).toBe(true);
    expect((err as Error).message.split("\n")[0]).toMatch(/^the host rolled back, but the GitHub deployment it undid is NOT marked, .*\(GitHub did not answer .*\); do not roll back again: mark it by hand, RUNBOOK.md §2 "When GitHub did not hear of the rollback"$/);
  });

  it("a host rollback that fails (the lock held by a deploy in flight, no earlier release) marks nothing", async () => {
    let marked = false;
    await expect(markedRollback(async () => ((marked = true), ["m"]), async () => Promise.reject(new Error("another release operation holds the deploy lock")))).rejects.toThrow("holds the deploy lock");
    expect(marked).toBe(false);
  });
});
