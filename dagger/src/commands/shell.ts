/**
 * Validation and quoting for every value that reaches a remote shell. One place decides
 * what is allowed; everything that builds a remote command line goes through it.
 */

import { REF_PATTERN, TAG_PATTERN } from "./contract.js";

/** Docker's tag grammar, and a release (a tag, optionally pinned to a digest): scripts/lib/contract.sh's. */
const TAG = TAG_PATTERN;
const REF = REF_PATTERN;
/** A person in the release record: a login or an e-mail-like name (lib.sh `person_option`). */
const PERSON = /^[A-Za-z0-9][A-Za-z0-9@._-]{0,63}$/;
/** An absolute path of plain segments: no spaces, quotes, `$`, `..` or shell syntax. */
const DIR = /^\/(?:[A-Za-z0-9_][A-Za-z0-9_.-]*\/?)*$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[?[0-9A-Fa-f:]+\]?$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;
/** Script flags and their values: `--no-pull`, `--timeout`, `60`, `backups`, `10,50` (canary steps). */
const ARG = /^(?:--?[a-z][a-z-]*|[A-Za-z0-9_][A-Za-z0-9_.,/-]*)$/;

function check(kind: string, value: string, rule: RegExp, fix: string): string {
  if (!rule.test(value)) throw new Error(`invalid ${kind} ${JSON.stringify(value)}: ${fix}`);
  return value;
}

export const validateTag = (tag: string) =>
  check("tag", tag, TAG, "use letters, digits, '_', '.', '-' (max 128, not starting with '.' or '-'), e.g. v1.2.3");
export const validateRef = (ref: string) =>
  check("tag", ref, REF, "use letters, digits, '_', '.', '-' (max 128), e.g. v1.2.3, optionally pinned as v1.2.3@sha256:<64 hex digits>");
export const validatePerson = (name: string) =>
  check("name", name, PERSON, "use letters, digits, '@', '.', '_', '-' (max 64), e.g. a GitHub login");
export const validateDir = (dir: string) =>
  check("dir", dir, DIR, "use an absolute path of letters, digits, '_', '.', '-' and '/', e.g. /opt/slipway");
export const validateHost = (host: string) =>
  check("host", host, HOST, "use a DNS name or an IP address, e.g. app.example.com");
export const validateUser = (user: string) =>
  check("user", user, USER, "use a POSIX user name, e.g. deploy");
export const validateArg = (arg: string) =>
  check("argument", arg, ARG, "use a flag (--no-pull) or a plain word of letters, digits, '_', '.', ',', '/', '-'");

export function validatePort(port: number): number {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`invalid port ${port}: use an integer from 1 to 65535, e.g. 22`);
  }
  return port;
}

/** POSIX single-quoting: safe for any string, including one that passed no validation. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
