/**
 * Writes dagger/src/commands/contract.ts from scripts/lib/contract.sh, the one place the host
 * scripts and the module agree on the ref grammar, the canary limits and the bundle
 * (`npm run contract`). dagger/test/contract.test.ts fails when the written file is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
export const CONTRACT_SH = `${root}scripts/lib/contract.sh`;
export const CONTRACT_TS = `${root}dagger/src/commands/contract.ts`;

/** contract.sh's NAME='value' and NAME=(words) lines as TypeScript constants. */
export function renderContract(sh: string): string {
  const out = [
    "// Generated from scripts/lib/contract.sh by dagger/generate-contract.ts (npm run contract): do not edit.",
    "// What the host scripts and this module must agree on; the rules and their reasons are there.",
    "",
  ];
  for (const line of sh.split("\n")) {
    let m: RegExpExecArray | null;
    if ((m = /^([A-Z][A-Z0-9_]*)='([^']*)'$/.exec(line))) {
      const [, name, value] = m as unknown as [string, string, string];
      if (name.endsWith("_PATTERN")) out.push(`export const ${name} = new RegExp(${JSON.stringify(value)});`);
      else if (/^\d+$/.test(value)) out.push(`export const ${name} = ${value};`);
      else out.push(`export const ${name} = ${JSON.stringify(value)};`);
    } else if ((m = /^([A-Z][A-Z0-9_]*)=\(([^)]*)\)$/.exec(line))) {
      out.push(`export const ${m[1]} = ${JSON.stringify(m[2]!.trim().split(/\s+/))} as const;`);
    } else if (/^[A-Z]/.test(line)) {
      throw new Error(`scripts/lib/contract.sh: cannot read ${JSON.stringify(line)}: use NAME='value' or NAME=(words)`);
    }
  }
  return `${out.join("\n")}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(CONTRACT_TS, renderContract(readFileSync(CONTRACT_SH, "utf8")));
  console.log(`wrote ${CONTRACT_TS}`);
}
