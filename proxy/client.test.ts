// The proxy's client key (client.js, run by njs), run here by Node.
import { describe, expect, it } from "vitest";
// @ts-expect-error: plain JavaScript for njs, no type declarations
import client from "./client.js";

const keyOf = client.keyOf as (header: string, value: string | undefined, remote: string) => string;

describe("client.js keyOf: who the guard counts a request against", () => {
  it("is the connection's address when no header is configured, whatever the client sends", () => {
    expect(keyOf("", "198.51.100.7", "203.0.113.9")).toBe("203.0.113.9");
    expect(keyOf("", undefined, "203.0.113.9")).toBe("203.0.113.9");
  });

  it("is the configured header's last address (the one the nearest proxy added), else the connection's", () => {
    expect(keyOf("X-Forwarded-For", "1.1.1.1, 198.51.100.7", "10.0.0.1")).toBe("198.51.100.7");
    expect(keyOf("X-Forwarded-For", " 198.51.100.7 ", "10.0.0.1")).toBe("198.51.100.7");
    expect(keyOf("X-Forwarded-For", "", "10.0.0.1")).toBe("10.0.0.1");
    expect(keyOf("X-Forwarded-For", "198.51.100.7,", "10.0.0.1")).toBe("10.0.0.1");
    expect(keyOf("X-Forwarded-For", undefined, "10.0.0.1")).toBe("10.0.0.1");
  });

  it("counts an IPv6 client as its /64, however the address is written", () => {
    const a = keyOf("", undefined, "2001:db8:1:2:aaaa::1");
    expect(a).toBe("2001:db8:1:2::/64");
    expect(keyOf("", undefined, "2001:0DB8:0001:0002:ffff:ffff:ffff:ffff")).toBe(a);
    expect(keyOf("X-Forwarded-For", "[2001:db8:1:2::9]:443", "10.0.0.1")).toBe(a);
    expect(keyOf("", undefined, "::1")).toBe("0:0:0:0::/64");
    expect(keyOf("", undefined, "::ffff:198.51.100.7")).toBe("0:0:0:0::/64");
  });

  it("makes a hostile header value a bounded, plain key", () => {
    const k = keyOf("X-Forwarded-For", `x"\u0000\u001b${"y".repeat(500)}`, "10.0.0.1");
    expect(k).toMatch(/^[0-9A-Za-z.:_-]{1,64}$/);
    expect(keyOf("X-Forwarded-For", "1:2:3:4:5:6:7:8:9", "10.0.0.1")).toBe("1:2:3:4:5:6:7:8:9");
    expect(keyOf("X-Forwarded-For", "1::2::3", "10.0.0.1")).toBe("1::2::3");
  });
});
