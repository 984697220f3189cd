import { describe, expect, it } from "vitest";
import { testSummary } from "../../src/commands/pipeline.js";

describe("ci's summary of the unit tests", () => {
  it("is the runner's count line, colours stripped", () => {
    const out = " Test Files  12 passed (12)\n\u001b[2m      Tests \u001b[22m 57 passed\u001b[39m (57)\n   Start at  04:05:58\n   Duration  8.29s\n";
    expect(testSummary(out)).toBe("57 passed (57)");
  });

  it("falls back to the last line when there is no count", () => {
    expect(testSummary("ran\nall good\n")).toBe("all good");
  });
});
