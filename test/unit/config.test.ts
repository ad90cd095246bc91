import path from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("when nothing is set, then the SPEC §7 defaults apply and the dev HS256 key lives in the data dir", () => {
    const c = loadConfig({}, {});
    expect(c.listen).toEqual({ host: "127.0.0.1", port: 50051 });
    expect(c.dataDir).toBe(path.resolve("./data"));
    expect(c.kekFile).toBe(path.resolve("./data/kek.json"));
    expect(c.jwt.hs256SecretFile).toBe(path.resolve("./data/jwt-dev.key"));
    expect(c.jwt.hs256IsDevKey).toBe(true);
    expect(c.jwt.algorithms).toEqual(["HS256"]);
    expect(c.jwt.tenantClaim).toBe("tenant");
    expect(c.maxVersions).toBe(10);
    expect(c.jwt.maxTtlSec).toBe(24 * 3600);
    expect(c.tls).toBeUndefined();
    expect(Object.isFrozen(c) && Object.isFrozen(c.jwt)).toBe(true);
  });

  it("when a flag, an env var and the YAML file set the same thing, then the flag wins, then env, then the file", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, "listen: 127.0.0.1:1111\nlog-level: debug\ntenant-claim: org\n");
    const c = loadConfig({ config: file, listen: "127.0.0.1:3333" }, { SECRETD_LISTEN: "127.0.0.1:2222", SECRETD_LOG_LEVEL: "warn" });
    expect(c.listen.port).toBe(3333);
    expect(c.logLevel).toBe("warn");
    expect(c.jwt.tenantClaim).toBe("org");
  });

  it("when a JWKS is configured, then no dev key is made and asymmetric algorithms are allowed", () => {
    const c = loadConfig({ jwtJwksFile: "/tmp/jwks.json" }, {});
    expect(c.jwt.hs256SecretFile).toBe("");
    expect(c.jwt.hs256IsDevKey).toBe(false);
    expect(c.jwt.algorithms).toContain("RS256");
    expect(c.jwt.algorithms).not.toContain("HS256");
  });

  const bad: Array<[string, Record<string, string>, Record<string, string>, string]> = [
    ["a listen address without port", { listen: "localhost" }, {}, "--listen"],
    ["max versions 0", {}, { SECRETD_MAX_VERSIONS: "0" }, "SECRETD_MAX_VERSIONS"],
    ["an unknown log level", { logLevel: "loud" }, {}, "--log-level"],
    ["a TLS cert without key", { tlsCert: "/x.pem" }, {}, "--tls-key"],
    ["a client CA without TLS", { tlsClientCa: "/ca.pem" }, {}, "--tls-client-ca"],
    ["algorithm none", { jwtAlgorithms: "none" }, {}, "--jwt-algorithms"],
    ["RS256 with no JWKS", { jwtAlgorithms: "RS256" }, {}, "--jwt-algorithms"],
    ["a non-postgres database URL", { databaseUrl: "mysql://x" }, {}, "--database-url"],
  ];
  for (const [what, flags, env, named] of bad) {
    it(`when given ${what}, then start-up fails naming ${named}`, () => {
      expect(() => loadConfig(flags, env)).toThrow(named);
    });
  }

  it("when the YAML file has an unknown setting, then it is refused by name", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, "lisen: 127.0.0.1:1\n");
    expect(() => loadConfig({ config: file }, {})).toThrow('unknown setting "lisen"');
  });

  it("when --jwt-max-ttl is set, then it is parsed as a duration; a bad one names the setting", () => {
    expect(loadConfig({ jwtMaxTtl: "15m" }, {}).jwt.maxTtlSec).toBe(900);
    expect(loadConfig({}, { SECRETD_JWT_MAX_TTL: "2h" }).jwt.maxTtlSec).toBe(7200);
    expect(() => loadConfig({ jwtMaxTtl: "forever" }, {})).toThrow(/--jwt-max-ttl \/ SECRETD_JWT_MAX_TTL/);
  });
});
