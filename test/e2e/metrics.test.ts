/**
 * Prometheus metrics end to end: the real server with --metrics-listen 127.0.0.1:0,
 * scraped over HTTP after real calls. The series count what happened, and no tenant or
 * secret name, value or token is in them unless --metrics-tenant-labels allows tenants.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";
import { openWatch } from "../helpers/watch.js";

const VALUE = "metrics-value-Hy6tQ1";
const TENANT = "tenant-secretive-name";
const SECRET = "secret-name-never-in-metrics";

async function scrape(port: number, path = "/metrics"): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get("content-type"), text: await res.text() };
}

/** The value of one sample line, e.g. series `grpc_server_handled_total{...}`; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const got = Object.fromEntries([...(m[1] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[2]);
  }
  return undefined;
}

describe("metrics", () => {
  let server: TestServer;
  let tokens: string[];

  beforeAll(async () => {
    server = await startTestServer({ metricsListen: "127.0.0.1:0" });
    const owner = await server.token({ tenant: TENANT, sub: "olivia", roles: ["data-developer"] });
    const stranger = await server.token({ tenant: TENANT, sub: "sam", roles: [] });
    tokens = [owner, stranger];
    await server.call("createSecret", { mesh: "m", name: SECRET, stringData: { password: VALUE } }, owner);
    for (let i = 0; i < 3; i++) await server.call("getSecret", { mesh: "m", name: SECRET }, owner);
    expect(await codeOf(server.call("getSecret", { mesh: "m", name: SECRET }, stranger))).toBe(status.NOT_FOUND);
    expect(await codeOf(server.call("getSecret", { mesh: "m", name: SECRET }, "bad-token"))).toBe(status.UNAUTHENTICATED);
  });

  afterAll(async () => {
    await server.stop();
  });

  it("when scraped, then /metrics serves the gRPC series counting each call by method and code", async () => {
    expect(server.app.metricsPort).toBeGreaterThan(0);
    const { status: code, type, text } = await scrape(server.app.metricsPort!);
    expect(code).toBe(200);
    expect(type).toMatch(/^text\/plain/);
    const m = { grpc_type: "unary", grpc_service: "secrets.v1.SecretService", grpc_method: "GetSecret" };
    expect(sample(text, "grpc_server_started_total", m)).toBe(5);
    expect(sample(text, "grpc_server_handled_total", { ...m, grpc_code: "OK" })).toBe(3);
    expect(sample(text, "grpc_server_handled_total", { ...m, grpc_code: "NOT_FOUND" })).toBe(1);
    expect(sample(text, "grpc_server_handled_total", { ...m, grpc_code: "UNAUTHENTICATED" })).toBe(1);
    expect(sample(text, "grpc_server_handled_total", { ...m, grpc_method: "CreateSecret", grpc_code: "OK" })).toBe(1);
    expect(sample(text, "grpc_server_handling_seconds_count", m)).toBe(5);
    expect(sample(text, "grpc_server_handling_seconds_bucket", { ...m, le: "+Inf" })).toBe(5);
  });

  it("when scraped, then audit, storage, KEK, watch and process series are there", async () => {
    await server.app.audit.flush();
    const { text } = await scrape(server.app.metricsPort!);
    expect(sample(text, "secretd_audit_queue_depth", {})).toBe(0);
    expect(sample(text, "secretd_audit_events_written_total", {})).toBe(5); // 1 create + 4 authenticated gets
    expect(sample(text, "secretd_audit_flush_seconds_count", {})).toBeGreaterThanOrEqual(1);
    expect(sample(text, "secretd_storage_commit_seconds_count", {})).toBeGreaterThanOrEqual(2);
    expect(sample(text, "secretd_kek_active_info", { kek_id: server.app.keyring.active.id })).toBe(1);
    expect(sample(text, "secretd_watches_open", {})).toBe(0);
    expect(sample(text, "process_resident_memory_bytes", {})).toBeGreaterThan(0);
    expect(sample(text, "nodejs_eventloop_lag_seconds", {})).toBeDefined();
  });

  it("when a WatchProjection stream is open, then the watch gauge counts it and the stream is a server_stream call until it ends", async () => {
    const stream = { grpc_type: "server_stream", grpc_service: "secrets.v1.SecretService", grpc_method: "WatchProjection" };
    const w = openWatch(server.client, { mesh: "m", items: [{ name: SECRET }] }, tokens[0]!);
    await w.next();
    const open = (await scrape(server.app.metricsPort!)).text;
    expect(sample(open, "secretd_watches_open", {})).toBe(1);
    expect(sample(open, "grpc_server_started_total", stream)).toBe(1);
    expect(sample(open, "grpc_server_handled_total", { ...stream, grpc_code: "CANCELLED" })).toBeUndefined();
    w.cancel();
    await expect.poll(async () => sample((await scrape(server.app.metricsPort!)).text, "grpc_server_handled_total", { ...stream, grpc_code: "CANCELLED" })).toBe(1);
    expect(sample((await scrape(server.app.metricsPort!)).text, "secretd_watches_open", {})).toBe(0);
  });

  it("when scraped, then no tenant name, secret name, value or token is in the text", async () => {
    const { text } = await scrape(server.app.metricsPort!);
    for (const needle of [TENANT, SECRET, VALUE, Buffer.from(VALUE).toString("base64"), "olivia", "sam", ...tokens]) expect(text).not.toContain(needle);
    expect(text).not.toContain("secretd_tenant_handled_total");
  });

  it("when another path is asked for, then 404", async () => {
    expect((await scrape(server.app.metricsPort!, "/")).status).toBe(404);
    expect((await scrape(server.app.metricsPort!, "/metrics/../debug")).status).toBe(404);
  });
});

describe("metrics configuration", () => {
  it("when --metrics-tenant-labels is set, then calls are also counted per tenant, still without secret names or values", async () => {
    const s = await startTestServer({ metricsListen: "127.0.0.1:0", metricsTenantLabels: "true" });
    try {
      const t = await s.token({ tenant: TENANT, sub: "olivia", roles: ["data-developer"] });
      await s.call("createSecret", { mesh: "m", name: SECRET, stringData: { password: VALUE } }, t);
      const { text } = await scrape(s.app.metricsPort!);
      expect(sample(text, "secretd_tenant_handled_total", { tenant: TENANT, grpc_method: "CreateSecret", grpc_code: "OK" })).toBe(1);
      for (const needle of [SECRET, VALUE, t]) expect(text).not.toContain(needle);
    } finally {
      await s.stop();
    }
  });

  it("when --metrics-listen is off, then no metrics port is opened", async () => {
    const s = await startTestServer();
    try {
      expect(s.app.metricsPort).toBeUndefined();
    } finally {
      await s.stop();
    }
  });

  it("when --metrics-listen or --metrics-tenant-labels is malformed, then loading the configuration fails naming it", () => {
    expect(() => loadConfig({ metricsListen: "nope" }, {})).toThrow(/--metrics-listen/);
    expect(() => loadConfig({ metricsTenantLabels: "maybe" }, {})).toThrow(/--metrics-tenant-labels/);
    expect(loadConfig({ metricsListen: "127.0.0.1:9464" }, {}).metricsListen).toEqual({ host: "127.0.0.1", port: 9464 });
    expect(loadConfig({}, { SECRETD_METRICS_TENANT_LABELS: "1" }).metricsTenantLabels).toBe(true);
  });
});
