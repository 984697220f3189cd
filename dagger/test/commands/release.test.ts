import { describe, expect, it } from "vitest";
import { pinnedReference, releaseRef } from "../../src/commands/release.js";

const digest = `sha256:${"ab".repeat(32)}`;

describe("release references", () => {
  it("pin what publish returned to its digest, dropping the tag a re-run re-points", () => {
    expect(pinnedReference(`ghcr.io/acme/api:3f2a@${digest}`)).toBe(`ghcr.io/acme/api@${digest}`);
    expect(pinnedReference(`127.0.0.1:5000/slipway/api:v1@${digest}`)).toBe(`127.0.0.1:5000/slipway/api@${digest}`);
    expect(pinnedReference(`127.0.0.1:5000/slipway/api@${digest}`)).toBe(`127.0.0.1:5000/slipway/api@${digest}`);
    expect(() => pinnedReference("ghcr.io/acme/api:3f2a")).toThrow(/not a reference with a sha256 digest/);
  });

  it("send the host tag@digest, validated", () => {
    expect(releaseRef("v2")).toBe("v2");
    expect(releaseRef("v2", digest)).toBe(`v2@${digest}`);
    expect(releaseRef(`v2@${digest}`)).toBe(`v2@${digest}`);
    expect(releaseRef(`v2@${digest}`, digest)).toBe(`v2@${digest}`);
    expect(() => releaseRef("v2", "sha256:abc")).toThrow(/invalid digest/);
    expect(() => releaseRef("v2", `sha256:${"AB".repeat(32)}`)).toThrow(/invalid digest/);
    expect(() => releaseRef(`v2@sha256:${"cd".repeat(32)}`, digest)).toThrow(/pin different images/);
    expect(() => releaseRef("v2$(id)", digest)).toThrow(/invalid tag/);
    expect(() => releaseRef(`v2@${digest};id`)).toThrow(/invalid tag/);
  });
});
