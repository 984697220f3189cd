/**
 * Trivy's command lines and the release gate. The Dagger `scan` function and the tests that
 * run a real Trivy both build their arguments here, so what is proved is what ships.
 */

/** The one Trivy pin: the pipeline's image tag and the version the tests build. */
export const TRIVY_VERSION = "0.74.0";
export const TRIVY_IMAGE = `aquasec/trivy:${TRIVY_VERSION}`;

/** Trivy exits 1 on fatal errors too, so findings use a code of their own. */
export const SCAN_GATE_EXIT_CODE = 10;

export const SEVERITIES = ["UNKNOWN", "LOW", "MEDIUM", "HIGH", "CRITICAL"] as const;
export type Severity = (typeof SEVERITIES)[number];
export type ReportFormat = "table" | "json" | "sarif";

export interface ScanOptions {
  /** `docker save` tarball or OCI layout directory. */
  input: string;
  /** Comma-separated severities that block, e.g. "HIGH,CRITICAL". */
  severity: string;
  ignoreUnfixed: boolean;
  /** A .trivyignore file; omitted when the source has none. */
  ignoreFile?: string;
  format: ReportFormat;
  /** Write the report here instead of stdout. */
  output?: string;
  cacheDir?: string;
  /** Use the DB already in cacheDir: no DB downloads, no version check, no telemetry. */
  offline: boolean;
  /** Download the DB from this OCI repository (a mirror in the user's own registry) instead of Trivy's default. */
  dbRepository?: string;
  /** Allow plain HTTP or an untrusted certificate when downloading from dbRepository. */
  insecure?: boolean;
  /** Exit with SCAN_GATE_EXIT_CODE when a finding at a blocking severity remains. */
  gate: boolean;
}

export function parseSeverities(severity: string): Severity[] {
  const list = severity.split(",").map((s) => s.trim().toUpperCase()).filter(Boolean);
  const bad = list.filter((s) => !(SEVERITIES as readonly string[]).includes(s));
  if (list.length === 0 || bad.length > 0) {
    throw new Error(`invalid severity ${JSON.stringify(severity)}: use a comma-separated list of ${SEVERITIES.join(", ")}`);
  }
  return list as Severity[];
}

type ReportOptions = Pick<ScanOptions, "severity" | "format" | "output" | "gate">;

function reportArgs(o: ReportOptions): string[] {
  const args = ["--severity", parseSeverities(o.severity).join(","), "--format", o.format];
  if (o.output) args.push("--output", o.output);
  args.push("--exit-code", o.gate ? String(SCAN_GATE_EXIT_CODE) : "0");
  return args;
}

function globalArgs(o: Pick<ScanOptions, "cacheDir" | "offline" | "dbRepository" | "insecure">): string[] {
  const args: string[] = [];
  if (o.cacheDir) args.push("--cache-dir", o.cacheDir);
  if (o.offline) args.push("--skip-db-update", "--skip-java-db-update", "--skip-version-check", "--disable-telemetry");
  else if (o.dbRepository) args.push("--db-repository", validateRepositoryRef(o.dbRepository));
  if (o.insecure) args.push("--insecure");
  return args;
}

/** An OCI repository reference as Trivy takes it: `host[:port]/path[:tag]`, e.g. registry.acme.internal/trivy-db:2. */
export function validateRepositoryRef(ref: string): string {
  if (!/^[a-z0-9.-]+(?::[0-9]+)?(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)+(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$/.test(ref)) {
    throw new Error(`invalid DB repository ${JSON.stringify(ref)}: use host[:port]/path[:tag], e.g. registry.acme.internal/aquasecurity/trivy-db:2`);
  }
  return ref;
}

/** The engine cache volume for Trivy's DB from `dbRepository` ("" = Trivy's default source). */
export function trivyCacheVolume(dbRepository: string): string {
  return dbRepository ? `slipway-trivy-db-${dbRepository.toLowerCase().replace(/[^a-z0-9]+/g, "-")}` : "slipway-trivy-db";
}

/**
 * The window a scan's DB download belongs to (UTC date and six-hour block; Trivy publishes its DB
 * every six hours). The engine caches an exec by its inputs, so this input is what lets a scan
 * fetch a newer DB when one can exist, and reuse the result within the window.
 */
export function dbWindow(now: Date): string {
  return `${now.toISOString().slice(0, 10)}T${String(Math.floor(now.getUTCHours() / 6) * 6).padStart(2, "0")}`;
}

/** `trivy image …`: vulnerabilities only, so a secret or misconfig finding never reads as a CVE gate. */
export function trivyScanArgs(o: ScanOptions): string[] {
  const args = ["image", "--input", o.input, "--scanners", "vuln", ...globalArgs(o), ...reportArgs(o)];
  if (o.ignoreUnfixed) args.push("--ignore-unfixed");
  // Suppressions apply while scanning; `convert` does not re-apply them.
  if (o.ignoreFile) args.push("--ignorefile", o.ignoreFile);
  return args;
}

/** `trivy convert …`: renders a JSON report (from trivyScanArgs) as another format, optionally gating. */
export function trivyConvertArgs(o: ReportOptions, jsonReport: string): string[] {
  return ["convert", ...reportArgs(o), jsonReport];
}

// --- the gate, decided from the JSON report ------------------------------------------

export interface Finding {
  id: string;
  pkg: string;
  installed: string;
  fixed: string;
  severity: string;
  target: string;
}

interface TrivyJson {
  Results?: {
    Target?: string;
    Vulnerabilities?: {
      VulnerabilityID: string;
      PkgName: string;
      InstalledVersion?: string;
      FixedVersion?: string;
      Severity: string;
    }[];
  }[];
}

export interface GateResult {
  blocked: boolean;
  findings: Finding[];
  severities: Severity[];
}

/** Which findings in a Trivy JSON report are at a blocking severity. */
export function gateReport(reportJson: string, severity: string): GateResult {
  const severities = parseSeverities(severity);
  let report: TrivyJson;
  try {
    report = JSON.parse(reportJson) as TrivyJson;
  } catch {
    throw new Error("the Trivy report is not valid JSON: the scan did not complete, so the image is not cleared");
  }
  if (!report || !Array.isArray(report.Results)) {
    throw new Error("the Trivy report has no Results: the scan did not complete, so the image is not cleared");
  }
  const findings = report.Results.flatMap((r) =>
    (r.Vulnerabilities ?? [])
      .filter((v) => (severities as string[]).includes(v.Severity))
      .map((v) => ({
        id: v.VulnerabilityID,
        pkg: v.PkgName,
        installed: v.InstalledVersion ?? "",
        fixed: v.FixedVersion ?? "",
        severity: v.Severity,
        target: r.Target ?? "",
      })),
  );
  return { blocked: findings.length > 0, findings, severities };
}

/** Why the release is blocked, or undefined when it is not. */
export function releaseBlockers(gate: GateResult): string | undefined {
  if (!gate.blocked) return undefined;
  const list = gate.findings.slice(0, 5).map((f) => `${f.id} (${f.severity}) in ${f.pkg} ${f.installed}, fixed in ${f.fixed || "-"}`);
  const more = gate.findings.length > 5 ? ` and ${gate.findings.length - 5} more` : "";
  return (
    `image blocked by the scan: ${gate.findings.length} ${gate.severities.join("/")} finding(s): ${list.join("; ")}${more}. ` +
    "Upgrade the packages (rebuild on a patched base) or, for an accepted risk, list the ID in .trivyignore"
  );
}

/** The release path's guard: nothing is published or deployed past a blocked scan. */
export function assertReleasable(gate: GateResult): void {
  const blockers = releaseBlockers(gate);
  if (blockers) throw new Error(blockers);
}
