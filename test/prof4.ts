import { Stack } from "./support/stack.js";
import { startLoad } from "./support/load.js";
import { execa } from "execa";
import { writeFileSync } from "node:fs";
const clients = Number(process.argv[2] ?? 100);
const stack = new Stack({ port: 8000, tag: "v1" }).install();
await stack.up();
const load = startLoad({ baseUrl: "http://127.0.0.1:8000", clients, maxSeconds: 300 });
await new Promise((r) => setTimeout(r, 3000));
for (let i = 0; i < 4; i++) {
  await stack.dropKept();
  const t = Date.now();
  const r = await execa("bash", ["-c", 'PS4=\'+ $EPOCHREALTIME ${FUNCNAME[0]:-main} \'; set -x; source scripts/deploy.sh "$@"', "deploy", "--no-pull", "--skip-backup", i % 2 ? "v1" : "v2"], { cwd: stack.dir, reject: false, all: true });
  writeFileSync(`/tmp/trace${i}.txt`, r.all);
  console.log((Date.now() - t) / 1000, r.exitCode);
}
const res = await load.stop();
console.log("failed", res.samples.filter((s: any) => s.status < 200 || s.status >= 300).length);
await stack.down();
