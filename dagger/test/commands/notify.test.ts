import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { failureSummary, postNotification, slackPayload } from "../../src/commands/notify.js";

const digest = `sha256:${"ab".repeat(32)}`;

describe("release notifications", () => {
  it("say what, where, which digest and commit, who, what changed and why it failed", () => {
    const { text } = slackPayload({
      action: "deploy", phase: "failure", environment: "production", release: `3f2a@${digest}`, commit: "3f2a", author: "ana",
      operator: "bob", approver: "cy", changelog: ["fix the thing", "add the other"], detail: "api:3f2a never became healthy\nthe rest",
    });
    expect(text).toContain("Deploy of 3f2a to production FAILED (by bob, approved by cy)");
    expect(text).toContain(`digest: ${digest}`);
    expect(text).toContain("commit: 3f2a by ana");
    expect(text).toContain("• fix the thing\n• add the other");
    expect(text).toContain("reason: api:3f2a never became healthy");
    expect(text).not.toContain("the rest");
    expect(slackPayload({ action: "rollback", phase: "start", environment: "", release: "the previous release" }).text).toBe("Rollback of the previous release to the host started");
  });

  it("escape what Slack would read as markup (&, <, >): a commit subject cannot ping the channel or plant a link", () => {
    const { text } = slackPayload({
      action: "deploy", phase: "success", environment: "production", release: "v2", author: "Eve <eve@example.com>",
      commit: "3f2a", changelog: ["<!channel> deploy now", "see <https://evil.example|the docs> & more", "a &lt; b"], detail: "<@U123> done",
    });
    expect(text).not.toMatch(/[<>]/);
    expect(text).toContain("• &lt;!channel&gt; deploy now");
    expect(text).toContain("• see &lt;https://evil.example|the docs&gt; &amp; more");
    // Already-escaped text is escaped again: it shows as typed.
    expect(text).toContain("• a &amp;lt; b");
    expect(text).toContain("by Eve &lt;eve@example.com&gt;");
    // Capped without cutting an escape in two.
    const long = slackPayload({ action: "deploy", phase: "success", environment: "p", release: "v", changelog: Array.from({ length: 20 }, () => "&".repeat(300)) }).text;
    expect(long.length).toBeLessThanOrEqual(3000);
    expect(long).toMatch(/(&amp;)+$/);
  });

  it("name why a release failed in one line: the host's result line, else the error's first line (no prose is read)", () => {
    const exec = {
      message: "exit code: 1",
      stdout: '… [deploy] [9s] starting api:v2\n2026-11-25T06:44:25Z [deploy] ERROR: api:v2 never became healthy within 60s; removed it\nslipway-result {"outcome":"failed","action":"deploy","tag":"","digest":"","previous":"","slot":"a","error":"api:v2 never became healthy within 60s; removed it"}\n',
    };
    expect(failureSummary(exec)).toBe("api:v2 never became healthy within 60s; removed it");
    expect(failureSummary({ message: "exit code: 1", stdout: "2026-11-25T06:44:25Z [deploy] ERROR: invalid tag 'v1;x'\n" })).toBe("exit code: 1");
    expect(failureSummary(new Error("smoke test failed at GET /health: answered 502; rolled back automatically\nok   …"))).toBe(
      "smoke test failed at GET /health: answered 502; rolled back automatically",
    );
  });

  it("post to a real HTTP receiver, and report (never throw) when it refuses or is gone", async () => {
    const got: string[] = [];
    let status = 200;
    const server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => { got.push(body); res.writeHead(status).end("ok"); });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook/secret-part`;
    expect(await postNotification(url, { text: "hi" })).toBe("");
    expect(JSON.parse(got[0]!)).toEqual({ text: "hi" });
    status = 500;
    expect(await postNotification(url, { text: "hi" })).toMatch(/not delivered \(the webhook answered 500\)/);
    await new Promise((r) => server.close(r));
    const gone = await postNotification(url, { text: "hi" });
    expect(gone).toMatch(/^warning: the notification was not delivered/);
    expect(gone).not.toContain("secret-part");
  });
});
