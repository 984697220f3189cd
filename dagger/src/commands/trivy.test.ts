import { describe, expect, it } from "vitest";
import { assertReleasable, gateReport, parseSeverities, SCAN_GATE_EXIT_CODE, trivyConvertArgs, trivyScanArgs } from "./trivy.js";

const report = (vulns: { id: string; severity: string }[]) =>
  JSON.stringify({
    Results: [
      {
        Target: "img (debian 12)",
        Vulnerabilities: vulns.map((v) => ({ VulnerabilityID: v.id, PkgName: "zlib1g", InstalledVersion: "1", FixedVersion: "2", Severity: v.severity })),
      },
    ],
  });

describe("trivy arguments", () => {
  it("scans vulnerabilities only, offline, gating on a code distinct from a fatal error", () => {
    const args = trivyScanArgs({
      input: "/i.tar", severity: "high,CRITICAL", ignoreUnfixed: true, ignoreFile: "/t", format: "json",
      output: "/r.json", cacheDir: "/c", offline: true, gate: true,
    });
    expect(args.slice(0, 5)).toEqual(["image", "--input", "/i.tar", "--scanners", "vuln"]);
    for (const flag of ["--skip-db-update", "--skip-java-db-update", "--skip-version-check", "--disable-telemetry", "--ignore-unfixed"]) {
      expect(args).toContain(flag);
    }
    expect(args.join(" ")).toContain("--severity HIGH,CRITICAL --format json --output /r.json");
    expect(args.join(" ")).toContain(`--exit-code ${SCAN_GATE_EXIT_CODE}`);
    expect(args.join(" ")).toContain("--ignorefile /t");
    expect(SCAN_GATE_EXIT_CODE).not.toBe(1);
  });

  it("omits what is not asked for", () => {
    const args = trivyScanArgs({ input: "/i.tar", severity: "CRITICAL", ignoreUnfixed: false, format: "table", offline: false, gate: false });
    expect(args).not.toContain("--ignore-unfixed");
    expect(args).not.toContain("--skip-db-update");
    expect(args).not.toContain("--ignorefile");
    expect(args.join(" ")).toContain("--exit-code 0");
    expect(trivyConvertArgs({ severity: "HIGH", format: "sarif", gate: false }, "/r.json")).toEqual([
      "convert", "--severity", "HIGH", "--format", "sarif", "--exit-code", "0", "/r.json",
    ]);
  });

  it("refuses an unknown severity with the allowed list", () => {
    expect(() => parseSeverities("HIGH,SEVERE")).toThrow(/invalid severity .*UNKNOWN, LOW, MEDIUM, HIGH, CRITICAL/);
    expect(() => parseSeverities("")).toThrow(/invalid severity/);
  });
});

describe("the release gate", () => {
  it("blocks on a finding at a blocking severity, names it, and refuses the release", () => {
    const gate = gateReport(report([{ id: "CVE-1", severity: "CRITICAL" }, { id: "CVE-2", severity: "LOW" }]), "HIGH,CRITICAL");
    expect(gate.blocked).toBe(true);
    expect(gate.findings.map((f) => f.id)).toEqual(["CVE-1"]);
    expect(() => assertReleasable(gate)).toThrow(/image blocked by the scan: 1 HIGH\/CRITICAL finding\(s\): CVE-1 \(CRITICAL\) in zlib1g/);
  });

  it("passes a report with nothing at a blocking severity", () => {
    const gate = gateReport(report([{ id: "CVE-3", severity: "MEDIUM" }]), "HIGH,CRITICAL");
    expect(gate.blocked).toBe(false);
    expect(() => assertReleasable(gate)).not.toThrow();
  });

  it("never reads a broken report as clean", () => {
    expect(() => gateReport("", "HIGH")).toThrow(/not valid JSON.*not cleared/);
    expect(() => gateReport("{}", "HIGH")).toThrow(/no Results.*not cleared/);
  });
});
