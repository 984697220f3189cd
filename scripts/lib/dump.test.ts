/**
 * Backups as the host really runs them: root and the deploy user (README's host preparation: a
 * user in the deployment directory's group, the directory setgid) both write into backups/,
 * whoever made it. Before, root's first backup made it 0700 and root's, and the deploy user's
 * next backup failed ("rm: cannot remove …partial: Permission denied"), and so its deploys.
 */
import { chmodSync, chownSync, cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../test/support/database.js";

// An unprivileged user and group that every Debian system has.
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

/** write_dump as UID (a group member of the deployment directory) or as root; the dump a fake pg_dump writes. */
async function backup(dir: string, uid: number | null, complete = true) {
  const dump = `printf -- '--\\n-- PostgreSQL database dump\\n--\\nSELECT 1;\\n${complete ? "-- PostgreSQL database dump complete\\n" : ""}'`;
  const script = `source ${join(repoRoot, "scripts/lib.sh")} && write_dump "$SLIPWAY_DIR/backups" slipway 2 "the fake" bash -c "${dump}"`;
  const argv = uid === null ? ["bash", "-c", script] : ["setpriv", `--reuid=${uid}`, `--regid=${NOBODY}`, "--clear-groups", "bash", "-c", script];
  return execa(argv[0]!, argv.slice(1), { reject: false, all: true, env: { SLIPWAY_DIR: dir, SLIPWAY_LOCK_FILE: join(dir, ".lock"), HOME: "/tmp" } });
}

describe.skipIf(!asRoot && process.env.CI !== "true")("backups/ as root and the deploy user share it (needs root to switch users)", () => {
  it("root's first backup, then the deploy user's, a failed one, and root's again all work; dumps are the group's only", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-dump-"));
    // The deployment directory as README prepares it: the deploy group's, setgid, 2770.
    chownSync(dir, 0, NOBODY);
    chmodSync(dir, 0o2770);
    const first = await backup(dir, null);
    expect(first.exitCode, String(first.all)).toBe(0);
    const backups = join(dir, "backups");
    const st = statSync(backups);
    expect([st.mode & 0o7777, st.gid]).toEqual([0o2770, NOBODY]);
    await new Promise((r) => setTimeout(r, 1100));
    const user = await backup(dir, NOBODY);
    expect(user.exitCode, String(user.all)).toBe(0);
    const failed = await backup(dir, NOBODY, false);
    expect(failed.exitCode).toBe(1);
    expect(String(failed.all)).toMatch(/the dump ended early \(no completion marker\); no backup was written/);
    await new Promise((r) => setTimeout(r, 1100));
    const again = await backup(dir, null);
    expect(again.exitCode, String(again.all)).toBe(0);
    const files = readdirSync(backups);
    // KEEP 2: root's first was pruned by the later ones, whoever wrote them; no partial file is left.
    expect(files.filter((f) => f.endsWith(".sql"))).toHaveLength(2);
    expect(files.filter((f) => f.includes("partial"))).toEqual([]);
    for (const f of files) expect(statSync(join(backups, f)).mode & 0o777, f).toBe(0o640);
  });

  it("a backups/ an older release made 0700 for root is named with the fix, before anything is written", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-dump-"));
    chownSync(dir, 0, NOBODY);
    chmodSync(dir, 0o2770);
    await execa("bash", ["-c", `mkdir -m 0700 "${dir}/backups"`]);
    const r = await backup(dir, NOBODY);
    expect(r.exitCode).toBe(1);
    expect(String(r.all).trim().split("\n")).toHaveLength(1);
    expect(String(r.all)).toMatch(/cannot write to .*\/backups \(root:\S+ 2?700\); no backup was written: as its owner or root, chgrp --reference=.* && chmod 2770 /);
  });
});

/** dump_form on TEXT: "" when it has pg_dump's form, else why not. */
async function form(text: string) {
  const dir = mkdtempSync(join(tmpdir(), "slipway-form-"));
  writeFileSync(join(dir, "d.sql"), text);
  const r = await execa("bash", ["-c", `source ${join(repoRoot, "scripts/lib.sh")} && dump_form "$1"`, "_", join(dir, "d.sql")], { reject: false, env: { SLIPWAY_DIR: dir } });
  return r.exitCode === 0 ? "" : String(r.stdout);
}

describe("restore runs only what backup wrote: dump_form", () => {
  // A real pg_dump 15.18 file: \restrict at the top, \unrestrict last, COPY data holding \N, \\ and "\!".
  const real = readFileSync(join(repoRoot, "test/fixtures/pg_dump-15.sql"), "utf8");
  const key = /^\\restrict (\S+)$/m.exec(real)![1]!;
  const beforeEnd = (extra: string) => real.replace("--\n-- PostgreSQL database dump complete", `${extra}\n--\n-- PostgreSQL database dump complete`);

  it("takes pg_dump's own output, backslashes in its COPY data included", async () => {
    expect(await form(real)).toBe("");
    expect(real).toMatch(/^1\t\\N\tback\\\\slash$/m);
  });

  it("refuses a crafted file at the first line that breaks the form: meta-commands, COPY PROGRAM, a wrong key, text after the end", async () => {
    const cases: [string, RegExp][] = [
      [beforeEnd("\\! id > /tmp/pwned"), /is a psql meta-command \(\\! id > \/tmp…\) where pg_dump writes none/],
      [beforeEnd(`\\unrestrict ${key}\n\\! id`), /is a psql meta-command|comes after \\unrestrict/],
      [`${real}\\! id\n`, /comes after \\unrestrict/],
      [`${real}DROP TABLE items;\n`, /comes after \\unrestrict/],
      [beforeEnd("COPY public.items (id) FROM PROGRAM 'id';"), /is a COPY that pg_dump never writes/],
      [beforeEnd("COPY public.items (id) TO '/tmp/out';"), /is a COPY that pg_dump never writes/],
      [real.replace(`\\unrestrict ${key}`, "\\unrestrict WRONG"), /is a psql meta-command \(\\unrestrict …\)/],
      [real.replace(/^\\unrestrict .*$/m, ""), /no \\unrestrict for the \\restrict at the top/],
      [real.replace("-- PostgreSQL database dump\n", "-- my own SQL\n"), /^line 2 is not pg_dump's header/],
      [real.replace(/^\\\.$/m, ""), /ends inside COPY data|is a psql meta-command/],
      [real.replace(/^\\restrict .*$/m, "\\set ON_ERROR_STOP 0"), /line \d+ is a psql meta-command \(\\set ON_ERRO…\)/],
      ["", /ends before pg_dump's header/],
      [beforeEnd("\u0000\\copy x from '/etc/passwd'"), /the file holds NUL bytes/],
    ];
    for (const [text, why] of cases) expect(await form(text), text.slice(-80)).toMatch(why);
  });

  it("restore.sh refuses such a file in one line before it looks for the database", async () => {
    const dir = mkdtempSync(join(tmpdir(), "slipway-restore-"));
    cpSync(join(repoRoot, "scripts"), join(dir, "scripts"), { recursive: true });
    writeFileSync(join(dir, ".env"), "COMPOSE_PROJECT_NAME=t\n");
    writeFileSync(join(dir, "evil.sql"), beforeEnd("\\! id > /tmp/pwned"));
    // No docker on PATH: a restore that got as far as the database would fail differently.
    const r = await execa("bash", ["scripts/restore.sh", "evil.sql", "--yes"], { cwd: dir, reject: false, all: true, env: { PATH: "/usr/bin:/bin", SLIPWAY_LOCK_FILE: join(dir, "lock") } });
    expect(r.exitCode).toBe(1);
    expect(String(r.all).trim().split("\n")).toHaveLength(1);
    expect(String(r.all)).toMatch(/ERROR: 'evil\.sql' is not a dump as backup\.sh writes them \(line \d+ is a psql meta-command .*\); nothing was changed: restore only files from backups\//);
  });
});

describe("backup.sh --verify FILE: whether a backup is whole, by the checks restore.sh makes", () => {
  const verify = (file: string) => execa("bash", [join(repoRoot, "scripts/backup.sh"), "--verify", file], { reject: false, all: true, cwd: mkdtempSync(join(tmpdir(), "slipway-verify-")) });

  it("says whole for a real dump, and names why not for a truncated, crafted or missing one, in one line each", async () => {
    const real = join(repoRoot, "test/fixtures/pg_dump-15.sql");
    const ok = await verify(real);
    expect([ok.exitCode, String(ok.stdout)]).toEqual([0, `whole: ${real}`]);
    const dir = mkdtempSync(join(tmpdir(), "slipway-verify-"));
    const text = readFileSync(real, "utf8");
    writeFileSync(join(dir, "half.sql"), text.slice(0, text.length / 2));
    writeFileSync(join(dir, "crafted.sql"), text.replace("SET statement_timeout = 0;", "\\! id\nSET statement_timeout = 0;"));
    for (const [file, why] of [
      [join(dir, "half.sql"), /is truncated or not a pg_dump file \(no completion marker\): restore another/],
      [join(dir, "crafted.sql"), /is not a dump as backup\.sh writes them \(line \d+ is a psql meta-command \(\\! id…\) where pg_dump writes none\): restore another/],
      [join(dir, "nope.sql"), /backup file '.*nope\.sql' does not exist or is not readable/],
    ] as const) {
      const r = await verify(file);
      expect(r.exitCode, file).toBe(1);
      expect(String(r.all).trim().split("\n"), file).toHaveLength(1);
      expect(String(r.all)).toMatch(why);
    }
  });
});
