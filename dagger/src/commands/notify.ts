/**
 * Release notifications: the message for each phase of a deploy or rollback, and a poster that
 * never fails a release (a notification is best effort; the release's own result stands).
 */
import { hostResult } from "./release.js";

export interface ReleaseEvent {
  action: "deploy" | "rollback";
  phase: "start" | "success" | "failure";
  environment: string;
  /** The release: a tag, or tag@sha256:… */
  release: string;
  commit?: string;
  author?: string;
  operator?: string;
  approver?: string;
  /** Commit subjects since the previous release, newest first. */
  changelog?: string[];
  /** Why it failed (see failureSummary), or the host's closing line. */
  detail?: string;
}

const PHASE = { start: "started", success: "succeeded", failure: "FAILED" } as const;

/**
 * Text as Slack shows it literally: `&`, `<` and `>` escaped, as Slack documents for message text,
 * so a commit subject holding `<!channel>` or `<https://…|text>` neither pings nor plants a link.
 */
export function slackEscape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** Slack's incoming-webhook payload: one text message (mrkdwn), capped at what Slack shows. */
export function slackPayload(e: ReleaseEvent): { text: string } {
  const [tag, digest] = e.release.split("@");
  const who = [e.operator && `by ${e.operator}`, e.approver && `approved by ${e.approver}`].filter(Boolean).join(", ");
  const lines = [
    `${e.action === "deploy" ? "Deploy" : "Rollback"} of ${tag} to ${e.environment || "the host"} ${PHASE[e.phase]}${who ? ` (${who})` : ""}`,
    digest && `digest: ${digest}`,
    e.commit && `commit: ${e.commit}${e.author ? ` by ${e.author}` : ""}`,
    e.changelog?.length ? `changes:\n${e.changelog.slice(0, 20).map((s) => `• ${s}`).join("\n")}` : "",
    e.detail && `${e.phase === "failure" ? "reason" : "result"}: ${e.detail.trim().split("\n")[0]}`,
  ];
  // Every value is someone's text (a commit subject, an author, a host's error): all escaped.
  return { text: truncate(slackEscape(lines.filter(Boolean).join("\n")), 3000) };
}

/** At most MAX characters, never ending inside an escape (`&am`). */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max);
  const amp = cut.lastIndexOf("&");
  return amp >= 0 && !cut.slice(amp).includes(";") ? cut.slice(0, amp) : cut;
}

/**
 * The one line that says why a release failed: the host script's last `ERROR:` line (an exec
 * error carries the script's output beside its message), else the error's first line.
 */
export function failureSummary(err: { message?: string; stdout?: string; stderr?: string }): string {
  const text = [err.stdout, err.stderr, err.message].filter(Boolean).join("\n");
  // The host's result line when the script got that far; else the first line of the error.
  // A line the module cannot read still leaves a reason: the notice is posted whatever the host printed.
  let result: ReturnType<typeof hostResult>;
  try {
    result = hostResult(text);
  } catch {
    result = undefined;
  }
  if (result?.outcome === "failed" && result.error) return result.error;
  return (err.message ?? String(err)).split("\n")[0]!;
}

/** Posts the payload; returns "" when delivered, else a warning line. Never throws. */
export async function postNotification(webhook: string, payload: { text: string }, doFetch: typeof fetch = fetch): Promise<string> {
  try {
    const res = await doFetch(webhook, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
      signal: AbortSignal.timeout(10_000),
    });
    return res.ok ? "" : `warning: the notification was not delivered (the webhook answered ${res.status})`;
  } catch (err) {
    // The webhook URL is a secret: never echo it.
    return `warning: the notification was not delivered (${(err as Error).name})`;
  }
}
