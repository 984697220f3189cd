import { describe, expect, it } from "vitest";
import { assertReleasable, dbWindow, trivyCacheVolume, gateReport, parseSeverities, SCAN_GATE_EXIT_CODE, trivyConvertArgs, trivyScanArgs } from "../../src/commands/trivy.js";

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

  it("downloads the DB from the user's own repository when given one, and never when offline", () => {
    const base = { input: "/i.tar", severity: "HIGH", ignoreUnfixed: false, format: "json" as const, gate: false };
    const mirror = trivyScanArgs({ ...base, offline: false, dbRepository: "registry.acme.internal:5000/sec/trivy-db:2", insecure: true });
    expect(mirror.join(" ")).toContain("--db-repository registry.acme.internal:5000/sec/trivy-db:2");
    expect(mirror).toContain("--insecure");
    const offline = trivyScanArgs({ ...base, offline: true, dbRepository: "registry.acme.internal/trivy-db" });
    expect(offline).not.toContain("--db-repository");
    expect(offline).toContain("--skip-db-update");
    expect(trivyScanArgs({ ...base, offline: false })).not.toContain("--insecure");
    for (const bad of ["ghcr.io", "https://ghcr.io/aquasecurity/trivy-db", "reg/x;id", "Reg.io/Trivy-DB", "reg.io/db:-x"]) {
      expect(() => trivyScanArgs({ ...base, offline: false, dbRepository: bad }), bad).toThrow(/^invalid DB repository .*host\[:port\]\/path/);
    }
  });

  it("keeps each DB source's download in its own cache volume", () => {
    expect(trivyCacheVolume("")).toBe("slipway-trivy-db");
    expect(trivyCacheVolume("10.0.0.5:5000/sec/trivy-db:2")).toBe("slipway-trivy-db-10-0-0-5-5000-sec-trivy-db-2");
    expect(trivyCacheVolume("a/b:2")).not.toBe(trivyCacheVolume("a/c:2"));
  });

  it("puts a scan in the six-hour window in which Trivy may publish a new DB", () => {
    expect(dbWindow(new Date("2026-11-25T05:59:59Z"))).toBe("2026-11-25T00");
    expect(dbWindow(new Date("2026-11-25T06:00:00Z"))).toBe("2026-11-25T06");
    expect(dbWindow(new Date("2026-11-25T23:10:00Z"))).toBe("2026-11-25T18");
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
