import { describe, expect, it } from "vitest";
import { median, percentile, phaseSpan, renderSvg } from "./report.js";

describe("bench report helpers", () => {
  it("computes nearest-rank percentiles and medians", () => {
    const s = [5, 1, 4, 2, 3].map((ms) => ({ ms }));
    expect(percentile(s, 50)).toBe(3);
    expect(percentile(s, 99)).toBe(5);
    expect(percentile([], 50)).toBeNull();
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
  });

  it("draws one panel per run with phases and failures", () => {
    const svg = renderSvg([
      { scenario: "deploy", clients: 10, ok: true, wallMs: 1, servingAllMs: 1, requests: 2, failed: 1, steadyP50: 1, steadyP99: 1, rollP50: 1, rollP99: 1, start: 1000, phases: [{ name: "switch", at: 1500 }], samples: [{ t: 0, ms: 2, ok: true }, { t: 600, ms: 9, ok: false }] },
    ]);
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain("deploy, 10 clients");
    expect(svg).toContain(">switch<");
    expect(svg).toContain('fill="red"');
  });

  it("shades the guard window up to the switch back, and measures spans between phases", () => {
    const run = {
      scenario: "bad release", clients: 10, ok: false, wallMs: 1, servingAllMs: 1, requests: 2, failed: 1, steadyP50: 1, steadyP99: 1, rollP50: 1, rollP99: 1, start: 1000,
      phases: [{ name: "switch", at: 1500 }, { name: "guard", at: 1600 }, { name: "revert", at: 8600 }],
      samples: [{ t: 0, ms: 2, ok: true }, { t: 9000, ms: 9, ok: false }],
    };
    expect(phaseSpan(run, "switch", "revert")).toBe(7100);
    expect(phaseSpan(run, "switch", "guard passed")).toBeNull();
    expect(renderSvg([run])).toMatch(/<rect x="[\d.]+" y="20" width="[\d.]+" height="160" fill="orange"/);
    expect(renderSvg([{ ...run, phases: [] }])).not.toContain('fill="orange"');
  });
});
