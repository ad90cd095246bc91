import path from "node:path";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { describe, expect, it } from "vitest";
import { effectiveSettings, loadConfig, maskUrl } from "../../src/config.js";

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
    writeFileSync(file, "listen: 127.0.0.1:1111\nlogLevel: debug\ntenantClaim: org\n");
    const c = loadConfig({ config: file, listen: "127.0.0.1:3333" }, { SECRETD_LISTEN: "127.0.0.1:2222", SECRETD_LOG_LEVEL: "warn" });
    expect(c.listen.port).toBe(3333);
    expect(c.logLevel).toBe("warn");
    expect(c.jwt.tenantClaim).toBe("org");
  });

  it("when the audit trail is bounded, then --audit-max-bytes takes a byte count or binary units (default 4GiB, 0 = none), from the flag, env or YAML", () => {
    expect(loadConfig({}, {}).audit).toMatchObject({ maxBytes: 4 * 1024 ** 3, maxEventsPerTenant: 50_000 });
    expect(loadConfig({ auditMaxBytes: "512MiB" }, {}).audit.maxBytes).toBe(512 * 1024 ** 2);
    expect(loadConfig({}, { SECRETD_AUDIT_MAX_BYTES: "0" }).audit.maxBytes).toBe(0);
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, "auditMaxBytes: 1048576\nauditMaxEventsPerTenant: 20\n");
    expect(loadConfig({ config: file }, {}).audit).toMatchObject({ maxBytes: 1048576, maxEventsPerTenant: 20 });
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
    ["workers that are not a number", {}, { SECRETD_WORKERS: "many" }, "SECRETD_WORKERS"],
    ["zero workers", { workers: "0" }, {}, "--workers"],
    ["a size with an unknown unit", { maxUnreadBytesPerTenant: "12MB" }, {}, "--max-unread-bytes-per-tenant"],
    ["a zero size", {}, { SECRETD_MAX_REQUEST_BYTES_PER_PEER: "0" }, "SECRETD_MAX_REQUEST_BYTES_PER_PEER"],
    ["a body timeout that is no duration", { requestBodyTimeout: "soon" }, {}, "--request-body-timeout"],
    ["an audit size that is not one", {}, { SECRETD_AUDIT_MAX_BYTES: "lots" }, "SECRETD_AUDIT_MAX_BYTES"],
    ["an audit size in decimal units", { auditMaxBytes: "4GB" }, {}, "--audit-max-bytes"],
    ["a zero audit quota", { auditMaxEventsPerTenant: "0" }, {}, "--audit-max-events-per-tenant"],
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

  it("when the YAML file uses a flag name instead of the camelCase key, then it is refused with the key to use", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, "data-dir: /tmp/x\n");
    expect(() => loadConfig({ config: file }, {})).toThrow('unknown setting "data-dir" (keys are camelCase: dataDir)');
  });

  it("when a YAML value is a mapping, then it is refused naming the setting; a list becomes a comma-separated value", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, "creatorRoles: [ops, dev]\n");
    expect(loadConfig({ config: file }, {}).creatorRoles).toEqual(["ops", "dev"]);
    writeFileSync(file, "listen:\n  host: x\n");
    expect(() => loadConfig({ config: file }, {})).toThrow("invalid configuration listen in --config");
  });

  it("when the YAML file does not parse, then the error gives the position but not the line's text", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "cfg-"));
    const file = path.join(dir, "c.yaml");
    writeFileSync(file, 'jwtJwksUrl: "https://u:S3cret-pw@x\n  : [\n');
    let msg = "";
    try {
      loadConfig({ config: file }, {});
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toMatch(/not valid YAML at line \d+, column \d+$/);
    expect(msg).not.toContain("S3cret-pw");
  });

  it("when settings are echoed, then each carries its source and URL passwords and queries are masked", () => {
    const eff = effectiveSettings({ listen: "127.0.0.1:1" }, { SECRETD_JWT_JWKS_URL: "https://a:pw@h/j?t=1" });
    expect(eff.find((s) => s.key === "listen")).toMatchObject({ value: "127.0.0.1:1", source: "flag" });
    expect(eff.find((s) => s.key === "jwtJwksUrl")).toMatchObject({ value: "https://a:***@h/j?***", source: "env" });
    expect(eff.find((s) => s.key === "logLevel")).toMatchObject({ value: "info", source: "default" });
    expect(maskUrl("postgres://u:p@db/x")).toBe("postgres://u:***@db/x");
    expect(maskUrl("not a url")).toBe("***");
  });

  it("when the resource ledger's bounds are set, then sizes take B, KiB, MiB or GiB; unset ones keep their defaults", () => {
    const c = loadConfig({ maxRequestBytesPerConnection: "512KiB", minDrainRate: "100", requestBodyTimeout: "0" }, { SECRETD_MAX_UNREAD_BYTES_PER_TENANT: "1GiB" });
    expect(c.resources).toEqual({
      requestBytesPerConnection: 512 * 1024,
      requestBytesPerPeer: 128 * 1024 * 1024,
      requestBodyTimeoutMs: 0,
      unreadBytesPerTenant: 1024 ** 3,
      unreadBytesPerConnection: 32 * 1024 * 1024,
      minDrainRate: 100,
    });
    expect(loadConfig({}, {}).resources.requestBodyTimeoutMs).toBe(30_000);
  });

  it("when --jwt-max-ttl is set, then it is parsed as a duration; a bad one names the setting", () => {
    expect(loadConfig({ jwtMaxTtl: "15m" }, {}).jwt.maxTtlSec).toBe(900);
    expect(loadConfig({}, { SECRETD_JWT_MAX_TTL: "2h" }).jwt.maxTtlSec).toBe(7200);
    expect(() => loadConfig({ jwtMaxTtl: "forever" }, {})).toThrow(/--jwt-max-ttl \/ SECRETD_JWT_MAX_TTL/);
  });
});
