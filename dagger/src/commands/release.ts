/**
 * Release references: what `publish` returns, and what `deploy` sends the host. A release is
 * pinned by its registry digest so the host runs exactly the image that passed the scan, whatever
 * its tag points at by then.
 */
import { validateRef } from "./shell.js";

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** `registry/repo:tag@sha256:…` (what the engine's publish returns) → `registry/repo@sha256:…`. */
export function pinnedReference(published: string): string {
  const match = /^([^@\s]+?)(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?@(sha256:[0-9a-f]{64})$/.exec(published);
  if (!match) throw new Error(`the registry returned ${JSON.stringify(published)}, not a reference with a sha256 digest`);
  return `${match[1]}@${match[2]}`;
}

/** The host scripts' release argument: `tag`, or `tag@digest` when a digest is given. */
export function releaseRef(tag: string, digest = ""): string {
  if (digest && !DIGEST.test(digest)) {
    throw new Error(`invalid digest ${JSON.stringify(digest)}: use sha256:<64 lowercase hex digits>, as ci prints it`);
  }
  if (digest && tag.includes("@") && !tag.endsWith(`@${digest}`)) {
    throw new Error(`${tag} and digest ${digest} pin different images; give one`);
  }
  return validateRef(digest && !tag.includes("@") ? `${tag}@${digest}` : tag);
}
