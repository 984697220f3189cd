import { describe, expect, it } from "vitest";
import { shellQuote, validateArg, validateDir, validateHost, validatePort, validateTag, validateUser } from "../../src/commands/shell.js";

describe("validation of values bound for a remote shell", () => {
  it.each(["v1", "v1.2.3", "2026-11-23_abc", "a".repeat(128), "sha-0123abc"])("accepts tag %s", (tag) => {
    expect(validateTag(tag)).toBe(tag);
  });

  it.each(["", "-v1", ".v1", "v1;rm -rf /", "v1 2", "v1\nv2", "$(id)", "`id`", "a".repeat(129), "v1'"])("refuses tag %j", (tag) => {
    expect(() => validateTag(tag)).toThrow(/^invalid tag .*: use letters, digits/);
  });

  it("refuses dirs that are relative, traverse or carry shell syntax", () => {
    expect(validateDir("/opt/slipway")).toBe("/opt/slipway");
    for (const dir of ["opt/slipway", "/opt/$(id)", "/opt/../etc", "/opt/a b", "/opt/x\n", "/opt/'q'", "/opt/`id`"]) {
      expect(() => validateDir(dir), dir).toThrow(/^invalid dir /);
    }
  });

  it("checks hosts, users, ports and script arguments", () => {
    expect(validateHost("app.example.com")).toBe("app.example.com");
    expect(validateHost("127.0.0.1")).toBe("127.0.0.1");
    for (const host of ["-oProxyCommand=x", "a b", "host;id", ""]) expect(() => validateHost(host)).toThrow(/^invalid host/);
    expect(validateUser("deploy")).toBe("deploy");
    for (const user of ["root;id", "-l", "Deploy User"]) expect(() => validateUser(user)).toThrow(/^invalid user/);
    expect(validatePort(22)).toBe(22);
    for (const port of [0, 65536, 2.5, Number.NaN]) expect(() => validatePort(port)).toThrow(/^invalid port/);
    expect(validateArg("--timeout")).toBe("--timeout");
    expect(validateArg("90")).toBe("90");
    expect(validateArg("10,50")).toBe("10,50");
    for (const arg of ["--x;id", "a b", "$(id)", "-"]) expect(() => validateArg(arg)).toThrow(/^invalid argument/);
  });
});

describe("shellQuote", () => {
  it("single-quotes, escaping embedded quotes", () => {
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("$(id) `id` ;")).toBe("'$(id) `id` ;'");
  });
});
