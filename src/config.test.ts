import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

describe("loadConfig", () => {
  const base = { DATABASE_URL: "postgres://u:p@db:5432/app" };

  it("applies defaults", () => {
    const c = loadConfig(base);
    expect(c).toMatchObject({ port: 3000, host: "0.0.0.0", version: "dev", logLevel: "info", shutdownGraceMs: 20_000, shutdownDelayMs: 0 });
    expect(loadConfig({ ...base, SHUTDOWN_DELAY_MS: "5000" }).shutdownDelayMs).toBe(5000);
  });

  it("reads the build's APP_VERSION", () => {
    expect(loadConfig({ ...base, APP_VERSION: "v2" }).version).toBe("v2");
  });

  it("refuses a missing DATABASE_URL with the fix in the message", () => {
    expect(() => loadConfig({})).toThrow(/DATABASE_URL is not set; set it/);
  });

  it("accepts an absolute .sock path only", () => {
    expect(loadConfig({ ...base, LISTEN_SOCKET: "/run/slipway/api-a.sock" }).listenSocket).toBe("/run/slipway/api-a.sock");
    expect(loadConfig(base).listenSocket).toBeUndefined();
    expect(() => loadConfig({ ...base, LISTEN_SOCKET: "api.sock" })).toThrow(/LISTEN_SOCKET=api\.sock is not an absolute path/);
  });

  it("refuses a malformed number and an unknown log level", () => {
    expect(() => loadConfig({ ...base, PORT: "80a" })).toThrow(/PORT="80a" is not a non-negative integer/);
    expect(() => loadConfig({ ...base, LOG_LEVEL: "loud" })).toThrow(/LOG_LEVEL=loud is unknown/);
  });

  it("takes any printable password from DATABASE_PASSWORD (the Compose stack) and encodes it: the driver reads back exactly it", async () => {
    const { parse } = await import("pg-connection-string");
    const printable = Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");
    for (const password of ["p@ss/w0rd#x%41", "a:b?c&d=e f", "%", "%%41", "ü€😀", printable]) {
      const url = loadConfig({ DATABASE_URL: "postgres://slipway@db:5432/slipway?sslmode=disable", DATABASE_PASSWORD: password }).databaseUrl;
      const got = parse(url);
      expect(got.password, password).toBe(password);
      expect([got.host, got.port, got.database, got.user]).toEqual(["db", "5432", "slipway", "slipway"]);
    }
    // The file, a Swarm secret, wins over the variable.
    expect(loadConfig({ DATABASE_URL: "postgres://u@db/x", DATABASE_PASSWORD: "env", DATABASE_PASSWORD_FILE: "/s" }, () => "file\n").databaseUrl).toBe("postgres://u:file@db/x");
  });

  it("takes the database password from DATABASE_PASSWORD_FILE (a Swarm secret) when set", () => {
    const env = { DATABASE_URL: "postgres://slipway@db:5432/slipway?sslmode=disable", DATABASE_PASSWORD_FILE: "/run/secrets/postgres_password" };
    const files: Record<string, string> = { "/run/secrets/postgres_password": "s3cr/t@x\n" };
    const read = (p: string) => {
      if (!(p in files)) throw new Error(`ENOENT: ${p}`);
      return files[p]!;
    };
    expect(loadConfig(env, read).databaseUrl).toBe("postgres://slipway:s3cr%2Ft%40x@db:5432/slipway?sslmode=disable");
    expect(() => loadConfig({ ...env, DATABASE_PASSWORD_FILE: "/run/secrets/nope" }, read)).toThrow(
      /DATABASE_PASSWORD_FILE=\/run\/secrets\/nope cannot be read \(ENOENT: \/run\/secrets\/nope\); grant the secret to this service/,
    );
    expect(loadConfig({ DATABASE_URL: "postgres://u:p@db/x" }, read).databaseUrl).toBe("postgres://u:p@db/x");
  });
});
