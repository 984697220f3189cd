/**
 * The scan gate, against a real Trivy (built from source by testenv/setup.sh) scanning the
 * real API image as a `docker save` tarball, with a vulnerability DB this test writes.
 * The arguments come from the same function the Dagger `scan` uses.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertReleasable, gateReport, SCAN_GATE_EXIT_CODE, trivyConvertArgs, trivyScanArgs } from "../dagger/src/commands/trivy.js";
import { buildImages } from "./support/stack.js";
import { toolPath } from "./support/tools.js";

interface Advisory {
  pkg: string;
  id: string;
  fixed: string;
  severity: string;
}

const work = mkdtempSync(join(tmpdir(), "slipway-trivy-"));
const tarball = join(work, "api-v1.tar");

/** zlib is really in the image (zlib1g); a fixed version far above the installed one makes it vulnerable. */
const zlib = (id: string, severity: string, fixed = "1:9.9.9-1"): Advisory => ({ pkg: "zlib", id, fixed, severity });

async function writeDb(name: string, advisories: Advisory[]): Promise<string> {
  const cache = join(work, name);
  const spec = JSON.stringify({ advisories: advisories.map((a) => ({ os: "debian 12", ...a })) });
  await execa(toolPath("trivydb"), ["-cache", cache], { input: spec });
  return cache;
}

async function scan(cache: string, opts: { ignoreUnfixed?: boolean; ignoreFile?: string; severity?: string } = {}) {
  const json = join(cache, "report.json");
  const args = trivyScanArgs({
    input: tarball,
    severity: opts.severity ?? "HIGH,CRITICAL",
    ignoreUnfixed: opts.ignoreUnfixed ?? false,
    ignoreFile: opts.ignoreFile,
    format: "json",
    output: json,
    cacheDir: cache,
    offline: true,
    gate: true,
  });
  const r = await execa(toolPath("trivy"), args, { reject: false, all: true });
  let report = "";
  try {
    report = readFileSync(json, "utf8");
  } catch {
    // no report: a fatal error
  }
  return { exitCode: r.exitCode, output: String(r.all), report, json };
}

beforeAll(async () => {
  await buildImages();
  await execa("docker", ["save", "-o", tarball, "slipway/api:v1"]);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("Trivy gate on the real API image", () => {
  it("a CRITICAL advisory with a fix blocks: gate exit code, and the report names the package and ID", async () => {
    const cache = await writeDb("critical", [zlib("CVE-2099-1001", "CRITICAL")]);
    const r = await scan(cache);
    expect(r.exitCode, r.output).toBe(SCAN_GATE_EXIT_CODE);
    const table = await execa(toolPath("trivy"), trivyConvertArgs({ severity: "HIGH,CRITICAL", format: "table", gate: true }, r.json), { reject: false });
    expect(table.exitCode).toBe(SCAN_GATE_EXIT_CODE);
    expect(table.stdout).toContain("zlib1g");
    expect(table.stdout).toContain("CVE-2099-1001");
    const gate = gateReport(r.report, "HIGH,CRITICAL");
    expect(gate.blocked).toBe(true);
    expect(gate.findings[0]).toMatchObject({ id: "CVE-2099-1001", pkg: "zlib1g", severity: "CRITICAL" });
    expect(() => assertReleasable(gate)).toThrow(/image blocked by the scan/);
  });

  it("HIGH blocks; MEDIUM only passes", async () => {
    const high = await scan(await writeDb("high", [zlib("CVE-2099-1002", "HIGH")]));
    expect(high.exitCode, high.output).toBe(SCAN_GATE_EXIT_CODE);
    const medium = await scan(await writeDb("medium", [zlib("CVE-2099-1003", "MEDIUM")]));
    expect(medium.exitCode, medium.output).toBe(0);
    expect(gateReport(medium.report, "HIGH,CRITICAL").blocked).toBe(false);
    expect(() => assertReleasable(gateReport(medium.report, "HIGH,CRITICAL"))).not.toThrow();
  });

  it("an advisory listed in .trivyignore passes", async () => {
    const cache = await writeDb("ignored", [zlib("CVE-2099-1004", "CRITICAL")]);
    const ignoreFile = join(cache, ".trivyignore");
    writeFileSync(ignoreFile, "# accepted until the base image is patched\nCVE-2099-1004\n");
    const r = await scan(cache, { ignoreFile });
    expect(r.exitCode, r.output).toBe(0);
    expect(gateReport(r.report, "HIGH,CRITICAL").blocked).toBe(false);
  });

  it("an unfixed advisory blocks by default and passes with --ignore-unfixed", async () => {
    const cache = await writeDb("unfixed", [zlib("CVE-2099-1005", "CRITICAL", "")]);
    const strict = await scan(cache);
    expect(strict.exitCode, strict.output).toBe(SCAN_GATE_EXIT_CODE);
    const lenient = await scan(cache, { ignoreUnfixed: true });
    expect(lenient.exitCode, lenient.output).toBe(0);
  });

  it("a corrupt or missing DB fails loudly, never as clean", async () => {
    const corrupt = await writeDb("corrupt", [zlib("CVE-2099-1006", "LOW")]);
    writeFileSync(join(corrupt, "db", "trivy.db"), "this is not a bolt database");
    const r1 = await scan(corrupt);
    expect(r1.exitCode).not.toBe(0);
    expect(r1.exitCode).not.toBe(SCAN_GATE_EXIT_CODE);
    expect(r1.output).toMatch(/FATAL|error/i);
    expect(() => gateReport(r1.report, "HIGH")).toThrow(/not cleared/);

    const missing = await scan(join(work, "no-db-here"));
    expect(missing.exitCode).not.toBe(0);
    expect(missing.exitCode).not.toBe(SCAN_GATE_EXIT_CODE);
    expect(missing.output).toMatch(/--skip-db-update|DB|database/i);
  });

  it("produces JSON and SARIF, and the JSON gate agrees with the exit code", async () => {
    for (const [name, advisories, blocked] of [
      ["agree-block", [zlib("CVE-2099-1007", "HIGH")], true],
      ["agree-pass", [zlib("CVE-2099-1008", "LOW")], false],
    ] as const) {
      const r = await scan(await writeDb(name, [...advisories]));
      expect(r.exitCode === SCAN_GATE_EXIT_CODE, name).toBe(blocked);
      expect(gateReport(r.report, "HIGH,CRITICAL").blocked, name).toBe(blocked);
      const sarifPath = join(work, name, "report.sarif");
      await execa(toolPath("trivy"), trivyConvertArgs({ severity: "HIGH,CRITICAL", format: "sarif", output: sarifPath, gate: false }, r.json));
      const sarif = JSON.parse(readFileSync(sarifPath, "utf8"));
      expect(sarif.version).toBe("2.1.0");
      const ruleIds = sarif.runs[0].results.map((x: { ruleId: string }) => x.ruleId);
      expect(ruleIds.includes("CVE-2099-1007")).toBe(blocked);
    }
  });
});
