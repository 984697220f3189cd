/**
 * The proxy's control shell (lib/proxy.sh): a switch goes through the shell opened ahead of it,
 * and falls back to a `docker exec` whenever that shell is missing, refused or gone. Here `docker
 * exec` is a stand-in that runs the command on this machine, counting each exec, so what is
 * tested is the protocol and the fallbacks; test/release.test.ts and the bench run it against a
 * real proxy.
 */
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

function sandbox(): { bin: string; execs: string } {
  const bin = mkdtempSync(join(tmpdir(), "proxy-control-"));
  const execs = join(bin, "execs");
  writeFileSync(execs, "");
  // docker exec [-i] CONTAINER CMD...: counted, then run here. REFUSE_EXEC=1: refused at once.
  writeFileSync(join(bin, "docker"), `#!/bin/sh\nshift; [ "$1" = -i ] && shift; shift\n[ -z "$REFUSE_EXEC" ] || exit 126\necho "$*" >>"${execs}"\nexec "$@"\n`);
  writeFileSync(join(bin, "slipway-upstream"), [
    "#!/bin/sh",
    'case "$1" in',
    '  a | b) echo "upstream now: slot $1 (instance: inst-$1)" ;;',
    '  --canary) echo "canary now: slot $2 takes $3 % beside slot a (instance: inst-$2)" ;;',
    '  *) echo "slipway-upstream: bad" >&2; exit 1 ;;',
    "esac",
  ].join("\n"));
  for (const f of ["docker", "slipway-upstream"]) chmodSync(join(bin, f), 0o755);
  return { bin, execs };
}

async function run(body: string, env: Record<string, string> = {}) {
  const box = sandbox();
  const script = [
    "set -euo pipefail",
    'log() { echo "log: $*" >&2; }',
    'die() { echo "die: $*" >&2; exit 1; }',
    "service_container() { echo proxy-1; }",
    "env_get() { echo a; }",
    `source ${join(repoRoot, "scripts/lib/proxy.sh")}`,
    body,
  ].join("\n");
  const r = await execa("bash", ["-c", script], { env: { ...env, EXECS: box.execs, PATH: `${box.bin}:${process.env.PATH}` }, reject: false, all: true });
  const execs = readFileSync(box.execs, "utf8").split("\n").filter(Boolean);
  return { ...r, execs };
}

describe("the proxy's control shell (lib/proxy.sh)", () => {
  it("switches and sets a canary share through the shell opened ahead: one exec for all of them", async () => {
    const r = await run('open_proxy_control\nswitch_proxy b; echo "instance=$SWITCHED_INSTANCE"\nproxy_upstream --canary a 10\nswitch_proxy a\nclose_proxy_control');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain("instance=inst-b");
    expect(r.stdout).toContain("canary now: slot a takes 10 %");
    expect(r.all).toContain("upstream now: slot a (instance: inst-a)");
    expect(r.execs).toHaveLength(1);
    expect(r.execs[0]).toMatch(/^sh -c .*slipway-upstream/);
  });

  it("execs as before when no shell is open, or after it is closed; closed, the shell ends", async () => {
    const r = await run('switch_proxy b\nopen_proxy_control\npid=$PROXY_CONTROL_SHELL_PID\nclose_proxy_control\nswitch_proxy a\nsleep 0.3\n! kill -0 "$pid" 2>/dev/null && echo "shell ended"');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toContain("shell ended");
    expect(r.execs.filter((e) => e.startsWith("slipway-upstream"))).toEqual(["slipway-upstream b", "slipway-upstream a"]);
  });

  it("falls back to an exec when the shell was refused or has gone, and the script goes on", async () => {
    // The shell's exec refused (exit 126): the switch's own exec is refused too, so it fails, but
    // with the refusal's status, not a SIGPIPE that would end the script.
    const refused = await run('open_proxy_control\nsleep 0.3\nswitch_proxy b || echo "switch failed: $?"\necho "still here"', { REFUSE_EXEC: "1" });
    expect(refused.stdout).toContain("switch failed: 1");
    expect(refused.stdout).toContain("still here");
    // The shell ended after it was opened (the proxy restarted): the switch execs.
    const gone = await run('open_proxy_control\nswitch_proxy b\nkill "$PROXY_CONTROL_SHELL_PID"\nsleep 0.3\nswitch_proxy a; echo "instance=$SWITCHED_INSTANCE"');
    expect(gone.exitCode, gone.all).toBe(0);
    expect(gone.stdout).toContain("instance=inst-a");
    expect(gone.execs.at(-1)).toBe("slipway-upstream a");
  });

  it("refuses to send anything but slipway-upstream's own arguments", async () => {
    // The shell's exec is counted by the stand-in beside this script, which may die first: it
    // waits for that count, so what is asserted is that nothing was exec'd after it.
    const r = await run(`open_proxy_control\nuntil [ -s "$EXECS" ]; do sleep 0.05; done\nproxy_upstream 'a;id'`);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/die: internal: 'a;id' is not a slipway-upstream argument/);
    expect(r.execs).toHaveLength(1);
  });
});
