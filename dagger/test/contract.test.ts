import { readFileSync } from "node:fs";
import { execa } from "execa";
import { describe, expect, it } from "vitest";
import { CONTRACT_SH, CONTRACT_TS, renderContract } from "../generate-contract.js";
import { join } from "node:path";
import { BUNDLE_ENTRIES, CANARY_STEPS_PATTERN, DECISIVE_STATES, DEPLOY_TASK, GUARD_SECONDS_MAX, REF_PATTERN, ROLLED_BACK_PREFIX } from "../src/commands/contract.js";

describe("the contract the host scripts and the module share (scripts/lib/contract.sh)", () => {
  it("dagger/src/commands/contract.ts is what the generator writes from it (npm run contract)", () => {
    expect(readFileSync(CONTRACT_TS, "utf8")).toBe(renderContract(readFileSync(CONTRACT_SH, "utf8")));
  });

  it("bash and TypeScript read each pattern the same way", async () => {
    const cases: [string, RegExp, string[]][] = [
      ["REF_PATTERN", REF_PATTERN, ["v1", "v1.2.3", `v1@sha256:${"a".repeat(64)}`, "-v1", "v1;id", `v1@sha256:${"a".repeat(63)}`, "a".repeat(129), "$(id)"]],
      ["CANARY_STEPS_PATTERN", CANARY_STEPS_PATTERN, ["10", "10,50", "1,2,99", "100", "0,10", "10,", "05", "1,2,3,4,5,6,7,8,9,10,11"]],
    ];
    for (const [name, pattern, values] of cases) {
      for (const value of values) {
        const bash = await execa("bash", ["-c", `source "$0"; [[ "$1" =~ $${name} ]]`, CONTRACT_SH, value], { reject: false });
        expect(bash.exitCode === 0, `${name} ${value}`).toBe(pattern.test(value));
      }
    }
    const entries = await execa("bash", ["-c", 'source "$0"; printf "%s\\n" "${BUNDLE_ENTRIES[@]}"', CONTRACT_SH]);
    expect(entries.stdout.split("\n")).toEqual([...BUNDLE_ENTRIES]);
  });

  it("the gate's rules and the guard's bound are the contract's alone: no reader or writer keeps its own copy", () => {
    const root = join(CONTRACT_SH, "../../..");
    const code = (path: string) => readFileSync(join(root, path), "utf8").split("\n").filter((l) => !/^\s*(#|\/\/|\*|\/\*\*)/.test(l)).join("\n");
    const gate = { ".github/scripts/deployments.sh": code(".github/scripts/deployments.sh"), "dagger/src/commands/github.ts": code("dagger/src/commands/github.ts"), ".github/workflows/deploy.yml": code(".github/workflows/deploy.yml") };
    for (const [file, text] of Object.entries(gate)) {
      expect(text, file).not.toContain(DEPLOY_TASK);
      expect(text, file).not.toContain(`"${ROLLED_BACK_PREFIX}`);
      expect(text, file).not.toMatch(new RegExp(DECISIVE_STATES.map((st) => `["']?${st}["']?`).join("[^\\n]{1,40}")));
    }
    // --guard's bound: the host's check and the module's use the contract's, not a literal.
    expect(code("scripts/deploy.sh")).toMatch(/GUARD_SECONDS_MAX/);
    expect(code("dagger/src/commands/ssh.ts")).toMatch(/guard > GUARD_SECONDS_MAX/);
    expect(code("dagger/src/commands/ssh.ts")).not.toContain(String(GUARD_SECONDS_MAX));
  });

  it("renders NAME='value' and NAME=(words), and refuses any other assignment", () => {
    expect(renderContract("# c\nA_PATTERN='^x$'\nN='7'\nS='a b'\nL=(x y)\n")).toContain(
      'export const A_PATTERN = new RegExp("^x$");\nexport const N = 7;\nexport const S = "a b";\nexport const L = ["x","y"] as const;',
    );
    expect(() => renderContract("X=$(id)\n")).toThrow(/cannot read "X=\$\(id\)"/);
  });
});
