import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { failureSummary } from "../../src/commands/notify.js";
import { hostResult, pinnedReference, releaseFields, releaseRef, resultSummary } from "../../src/commands/release.js";

const digest = `sha256:${"ab".repeat(32)}`;

describe("release references", () => {
  it("pin what publish returned to its digest, dropping the tag a re-run re-points", () => {
    expect(pinnedReference(`ghcr.io/acme/api:3f2a@${digest}`)).toBe(`ghcr.io/acme/api@${digest}`);
    expect(pinnedReference(`127.0.0.1:5000/slipway/api:v1@${digest}`)).toBe(`127.0.0.1:5000/slipway/api@${digest}`);
    expect(pinnedReference(`127.0.0.1:5000/slipway/api@${digest}`)).toBe(`127.0.0.1:5000/slipway/api@${digest}`);
    expect(() => pinnedReference("ghcr.io/acme/api:3f2a")).toThrow(/not a reference with a sha256 digest/);
  });

  it("send the host tag@digest, validated", () => {
    expect(releaseRef("v2")).toBe("v2");
    expect(releaseRef("v2", digest)).toBe(`v2@${digest}`);
    expect(releaseRef(`v2@${digest}`)).toBe(`v2@${digest}`);
    expect(releaseRef(`v2@${digest}`, digest)).toBe(`v2@${digest}`);
    expect(() => releaseRef("v2", "sha256:abc")).toThrow(/invalid digest/);
    expect(() => releaseRef("v2", `sha256:${"AB".repeat(32)}`)).toThrow(/invalid digest/);
    expect(() => releaseRef(`v2@sha256:${"cd".repeat(32)}`, digest)).toThrow(/pin different images/);
    expect(() => releaseRef("v2$(id)", digest)).toThrow(/invalid tag/);
    expect(() => releaseRef(`v2@${digest};id`)).toThrow(/invalid tag/);
  });
});

describe("the host's result line", () => {
  it("survives any message the host can print: ESC, \\r, bell, DEL, quotes, backslashes and bytes that are not UTF-8", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-result-"));
    writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\nAPI_SLOT=b\n");
    const message = 'pull failed: \u001b[31mdenied\u001b[0m\r\u0007 "x" \\ tab\there\nnext\u007f';
    const r = await execa("bash", ["-c", `source "$LIB" && DIE_MESSAGE=$(printf '%s\\377\\376 end' "$MSG") && result_line 1`], {
      env: { LIB: join(process.cwd(), "scripts/lib.sh"), MSG: message, SLIPWAY_DIR: dir },
      encoding: "buffer",
    });
    const line = Buffer.from(r.stderr as Uint8Array).toString("utf8");
    expect(line.trim().split("\n")).toHaveLength(1);
    // No raw control character but the line's own end.
    expect([...line.trimEnd()].filter((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)).toEqual([]);
    const result = hostResult(line)!;
    expect(result.outcome).toBe("failed");
    expect(result.slot).toBe("b");
    expect(result.error).toBe(`${message}\ufffd\ufffd end`);
    // So the failure notice has its reason.
    expect(failureSummary({ message: "exit code: 1", stderr: line })).toBe(result.error);
  });

  it("is read from the last slipway-result line, typed, and summarised in one line", () => {
    const out = ['2026-12-02T11:00:00Z [rollback] rolled back to v1 (sha256:…) in 1s', `slipway-result {"outcome":"ok","action":"rollback","tag":"v1","digest":"${digest}","previous":"v2","slot":"a","error":""}`].join("\n");
    const r = hostResult(out)!;
    expect(r).toEqual({ outcome: "ok", action: "rollback", tag: "v1", digest, previous: "v2", slot: "a", verdict: "", error: "" });
    expect(resultSummary(r)).toBe(`rolled back to v1 (${digest}), slot a; before: v2`);
    expect(hostResult("no result here\nrolled back to v9")).toBeUndefined();
    expect(() => hostResult('slipway-result {"outcome":"maybe"}')).toThrow(/outcome "maybe"/);
    expect(resultSummary({ ...r, outcome: "failed", action: "guard-rollback", error: "rolled back automatically: 5xx 50.0 % > 1 %" })).toBe("guard-rollback failed: rolled back automatically: 5xx 50.0 % > 1 %");
  });
});

describe("the Release deploy returns", () => {
  it("is typed from the result line, with the verdict and the smoke test, and refuses output without one", () => {
    const verdict = "canary 10 %: passed (52 requests, 0 5xx); guard: passed (410 requests, 0 5xx)";
    const log = ["[deploy] proxy reaches slipway-api-b-1 (api:v2)", `slipway-result {"outcome":"ok","action":"deploy","tag":"v2","digest":"${digest}","previous":"v1","slot":"b","verdict":"${verdict}","error":""}`].join("\n");
    expect(releaseFields(`${log}\nsmoke test passed`, "\nsmoke test passed\n")).toEqual({ action: "deploy", tag: "v2", digest, slot: "b", previous: "v1", verdict, smoke: "smoke test passed", summary: `deployed v2 (${digest}), slot b; before: v1; ${verdict}`, log: `${log}\nsmoke test passed` });
    expect(() => releaseFields("deployed v2", "")).toThrow(/no slipway-result line/);
  });
});
