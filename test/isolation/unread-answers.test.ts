/**
 * #27 item 1: answers a tenant's clients never read. Unread bytes are charged per tenant
 * (over all its connections) and per connection, watches included; past its share a
 * tenant's new answers are RESOURCE_EXHAUSTED while another tenant is served; and a
 * connection that holds output and opens its window a byte at a time is closed: progress
 * is a drain rate, not "a byte". The server runs in this process: its VmRSS stays bounded.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { GetSecretRequest, ProjectSecretsRequest, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { E2E_WORKERS, startTestServer, type TestServer } from "../helpers/server.js";
import { FRAME, frame, grpcFrame, grpcHeaders, RawConnection } from "../security/raw-http2.js";
import { connect, h2Request, MiB, S, startVictim, until, VICTIM_MESH, vmRss, type Outcome, type Victim } from "./harness.js";

const M = "m";
const RESOURCE_EXHAUSTED = "8";

let s: TestServer;
let victim: Victim;

beforeAll(async () => {
  s = await startTestServer({ maxUnreadBytesPerTenant: "4MiB", maxUnreadBytesPerConnection: "3MiB", writeStallTimeout: "1s", minDrainRate: "64KiB" });
  victim = await startVictim(s);
  await s.call("createSecret", { mesh: VICTIM_MESH, name: "big", data: { v: randomBytes(MiB - 64) } }, victim.token);
});

afterAll(async () => {
  await s?.stop();
});

/** A tenant with a 1 MiB secret "big". */
async function attacker(tenant: string): Promise<string> {
  const token = await s.token({ tenant, sub: "mallory", roles: ["tenant-admin"] });
  await s.call("createSecret", { mesh: M, name: "big", data: { v: randomBytes(MiB - 64) } }, token);
  return token;
}

/** The victim reads its own 1 MiB secret, and is served (harness.ts). */
async function victimServed(): Promise<void> {
  const big = await s.call<Secret>("getSecret", { mesh: VICTIM_MESH, name: "big" }, victim.token);
  expect(big.data.v!.length).toBe(MiB - 64);
  await victim.served();
}

const getBig = grpcFrame(GetSecretRequest.encode(GetSecretRequest.fromPartial({ mesh: M, name: "big" })).finish());
const watchBig = grpcFrame(ProjectSecretsRequest.encode(ProjectSecretsRequest.fromPartial({ mesh: M, items: [{ name: "big" }] })).finish());

describe.skipIf(E2E_WORKERS > 1)("unread answers", () => {
  it("when one tenant leaves 1 MiB answers unread on 4 connections, then past its 4 MiB share its new answers are RESOURCE_EXHAUSTED on every connection, and another tenant is served", async () => {
    const token = await attacker("evil-unary");
    const before = vmRss();
    const sessions = Array.from({ length: 4 }, () => connect(s.address, { zeroWindow: true }));
    try {
      const outcomes: Outcome[] = [];
      for (const session of sessions) for (let i = 0; i < 8; i++) outcomes.push(h2Request(session, `${S}/GetSecret`, getBig, { token, read: false }).outcome);
      // Refusals are trailers-only (headers, which flow control does not hold back); the admitted answers wait.
      await until(() => outcomes.filter((o) => o.status !== undefined).length >= 32 - 6, "refusals past the tenant's share");
      expect(outcomes.every((o) => o.status === undefined || o.status === RESOURCE_EXHAUSTED)).toBe(true);
      // At most the share (4 MiB: 4 or 5 answers) is held, whichever connection asked.
      expect(outcomes.filter((o) => o.status === undefined).length).toBeLessThanOrEqual(6);
      // Once past its share, the tenant's next calls are refused before their answer is built: no row is read for them.
      const storage = s.app.storage;
      const read = storage.readSecret.bind(storage);
      let reads = 0;
      const spy = vi.spyOn(storage, "readSecret").mockImplementation(async (scope, ...rest) => {
        if (scope.tenant === "evil-unary") reads++;
        return read(scope, ...rest);
      });
      try {
        const more = Array.from({ length: 8 }, () => h2Request(sessions[0]!, `${S}/GetSecret`, getBig, { token, read: false }).outcome);
        await until(() => more.every((o) => o.status !== undefined), "the calls past the share refused");
        expect(more.every((o) => o.status === RESOURCE_EXHAUSTED)).toBe(true);
        expect(reads).toBe(0);
      } finally {
        spy.mockRestore();
      }
      await victimServed();
      expect(vmRss() - before).toBeLessThan(96 * MiB);
    } finally {
      for (const x of sessions) x.destroy();
    }
  });

  it("when one tenant's watches are never read, then they are charged too: past its share new watches end RESOURCE_EXHAUSTED, and the victim's watch is served", async () => {
    const token = await attacker("evil-watch");
    const before = vmRss();
    const sessions = Array.from({ length: 2 }, () => connect(s.address, { zeroWindow: true }));
    try {
      const outcomes: Outcome[] = [];
      for (const session of sessions) for (let i = 0; i < 12; i++) outcomes.push(h2Request(session, `${S}/WatchProjection`, watchBig, { token, read: false }).outcome);
      await until(() => outcomes.filter((o) => o.status !== undefined).length >= 24 - 6, "watches refused past the tenant's share");
      expect(outcomes.every((o) => o.status === undefined || o.status === RESOURCE_EXHAUSTED)).toBe(true);
      await victimServed();
      expect(vmRss() - before).toBeLessThan(96 * MiB);
    } finally {
      for (const x of sessions) x.destroy();
    }
  });

  it("when a client opens its window one byte at a time, then its connection is closed for draining below the floor, and the victim is served", async () => {
    const token = await attacker("evil-trickle");
    const c = await RawConnection.open(s.app.port);
    try {
      // SETTINGS_INITIAL_WINDOW_SIZE = 0: nothing of an answer can be sent until a WINDOW_UPDATE.
      const zero = Buffer.alloc(6);
      zero.writeUInt16BE(0x4, 0);
      c.write(frame(FRAME.SETTINGS, 0, 0, zero));
      c.headers(1, grpcHeaders(s.address, `${S}/GetSecret`, [["authorization", `Bearer ${token}`]]));
      c.data(1, getBig, true);
      const one = Buffer.alloc(4);
      one.writeUInt32BE(1);
      // Each WINDOW_UPDATE lets one more byte out: before #27 every byte counted as progress.
      while (!c.closed) {
        c.write(frame(FRAME.WINDOW_UPDATE, 0, 1, one));
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(c.closed).toBe(true);
    } finally {
      c.close();
    }
    await victimServed();
  });
});
