/**
 * The typed result of `dagger call deploy`: built from the host's `slipway-result` line, never
 * from its prose. A file of its own because the engine's runtime loads every .ts in src/ and
 * registers each @object; index.ts stays the pipeline.
 */
import { func, object } from "@dagger.io/dagger";
import { releaseFields } from "./commands/release.js";

/**
 * A release the host now serves. `dagger call … deploy --tag=v2 summary` prints one line;
 * select any other field the same way (`… digest`, `… slot`, `… log`).
 */
@object()
export class Release {
  /** What the host did: deploy. */
  @func()
  action = "";

  /** The tag that serves now, e.g. v2. */
  @func()
  tag = "";

  /** The registry digest it runs (sha256:…), or "-" when it was deployed by tag alone. */
  @func()
  digest = "";

  /** The compose slot it serves from (a or b; empty on Swarm). */
  @func()
  slot = "";

  /** The release it replaced, kept warm for an instant rollback; "-" for a first deploy. */
  @func()
  previous = "";

  /** The guard's and each canary step's verdict with its figures, "; "-joined; empty when neither ran. */
  @func()
  verdict = "";

  /** The smoke test's report, when --smoke-url was given. */
  @func()
  smoke = "";

  /** The result in one line, as the notification says it. */
  @func()
  summary = "";

  /** Everything the host printed, then the smoke test and any notification warning. */
  @func()
  log = "";
}

/** The Release a deploy's output describes; fails when the host printed no result line. */
export const releaseOf = (log: string, smoke: string): Release => Object.assign(new Release(), releaseFields(log, smoke));
