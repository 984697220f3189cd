// For compose files shipped before the probe moved to src/healthcheck.pl: theirs name
// `node dist/healthcheck.js`, and a host may still run one with a newer image. Today's compose
// file names no probe, so Docker runs the image's own (the Dockerfile's HEALTHCHECK).
import { spawnSync } from "node:child_process";

process.exit(spawnSync("perl", ["/app/healthcheck.pl"], { stdio: "inherit" }).status ?? 1);
