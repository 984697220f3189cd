// The proxy's per-request choice of release slot (upstream.js, run by njs), run here by Node.
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript for njs, no type declarations
import upstream from "./upstream.js";

const pick = upstream.pick as (route: string, random: number) => string;
const readRoute = upstream.readRoute as (read: (path: string) => string) => string;

describe("upstream.js pick", () => {
  it("sends everything to the active slot without a canary", () => {
    expect(pick("a\n", 0)).toBe("api_a");
    expect(pick("b\n", 0.5)).toBe("api_b");
    expect(pick("", 0)).toBe("api_a");
    expect(pick("garbage", 0)).toBe("api_a");
  });

  it("gives the canary slot its percent share of requests", () => {
    const route = "a b 10\n";
    const shares = Array.from({ length: 1000 }, (_, i) => pick(route, i / 1000));
    expect(shares.filter((s) => s === "api_b")).toHaveLength(100);
    expect(shares.filter((s) => s === "api_a")).toHaveLength(900);
    expect(pick("b a 50", 0.49)).toBe("api_a");
    expect(pick("b a 50", 0.5)).toBe("api_b");
  });

  it("ignores a malformed canary part (the active slot takes everything)", () => {
    expect(pick("a c 50", 0)).toBe("api_a");
    expect(pick("a b", 0)).toBe("api_a");
    expect(pick("a b x", 0)).toBe("api_a");
    expect(pick("a b 0", 0)).toBe("api_a");
  });

  it("reads the route from the proxy's own volume; the sockets volume's legacy file only until the first switch writes it; else slot a", () => {
    const files = (f: Record<string, string>) => (path: string) => {
      if (!(path in f)) throw new Error(`ENOENT ${path}`);
      return f[path]!;
    };
    expect(readRoute(files({ "/run/slipway-route/active": "b\n", "/run/slipway/active": "a\n" }))).toBe("b\n");
    expect(readRoute(files({ "/run/slipway/active": "b\n" }))).toBe("b\n");
    expect(readRoute(files({}))).toBe("a");
  });
});
