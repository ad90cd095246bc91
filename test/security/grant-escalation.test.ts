/**
 * Attacks on the grant model (issue #16, items 6 and 7), against the real server.
 *
 * A delegated ADMIN must not outgrow the grant it holds: whatever it grants (to itself
 * or to others) ends no later than its own ADMIN grant, stays within its keys, and never
 * reaches above ADMIN. A key-limited grant gives only its keys' values: no secret-wide
 * act (delete, metadata, revoking or seeing grants of other keys), and a key-limited
 * writer sends only its keys, merged server-side, so the answer to an update never
 * depends on the values of keys it cannot read (no equality oracle).
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Permission, type Grant, type ListGrantsResponse, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

const M = "grants";
const READ = Permission.PERMISSION_READ;
const WRITE = Permission.PERMISSION_WRITE;
const ADMIN = Permission.PERMISSION_ADMIN;

let s: TestServer;
const tok: Record<string, string> = {};

beforeAll(async () => {
  s = await startTestServer();
  const who: Record<string, string[]> = { owner: ["data-developer"], adam: [], rose: [], kay: [], wes: [], mallory: [], ops1: ["ops"], boss: ["tenant-admin"] };
  for (const [sub, roles] of Object.entries(who)) tok[sub] = await s.token({ tenant: "acme", sub, roles });
});

afterAll(async () => {
  await s?.stop();
});


async function secretWith(name: string, values: Record<string, string>): Promise<void> {
  await s.call("createSecret", { mesh: M, name, stringData: values }, tok.owner);
}

function grant(name: string, as: string, subject: string, permission: Permission, extra: { keys?: string[]; expireTime?: Date } = {}): Promise<Grant> {
  return s.call<Grant>("grantAccess", { mesh: M, name, subject, permission, ...extra }, tok[as]);
}

async function detailsOf(p: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await p;
  } catch (e) {
    return { code: (e as ServiceError).code, details: (e as ServiceError).details };
  }
  return { code: status.OK, details: "" };
}

async function etagOf(name: string): Promise<string> {
  return (await s.call<Secret>("getSecret", { mesh: M, name }, tok.owner)).etag;
}

async function valuesOf(name: string): Promise<Record<string, string>> {
  const got = await s.call<Secret>("getSecret", { mesh: M, name }, tok.owner);
  return Object.fromEntries(Object.entries(got.data).map(([k, v]) => [k, Buffer.from(v).toString("utf8")]));
}

describe("a grant never outgrows its granter (#16.6)", () => {
  it("when a time-limited ADMIN re-grants itself ADMIN and others READ with no expire_time, then both end when its own grant ends", async () => {
    await secretWith("deadline", { a: "alpha" });
    const end = new Date(s.clock.now() + 1500);
    await grant("deadline", "owner", "user:adam", ADMIN, { expireTime: end });

    const self = await grant("deadline", "adam", "user:adam", ADMIN);
    const other = await grant("deadline", "adam", "user:rose", READ);
    expect(self.expireTime?.getTime()).toBe(end.getTime());
    expect(other.expireTime?.getTime()).toBe(end.getTime());
    await s.call("getSecret", { mesh: M, name: "deadline" }, tok.rose);

    await s.clock.advance(end.getTime() - s.clock.now() + 100);
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "deadline" }, tok.adam))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "deadline" }, tok.rose))).toBe(status.NOT_FOUND);
  });

  it("when a time-limited ADMIN asks for an expire_time past its own, then PERMISSION_DENIED and no grant is stored", async () => {
    await secretWith("later", { a: "alpha" });
    const end = new Date(s.clock.now() + 60_000);
    await grant("later", "owner", "user:adam", ADMIN, { expireTime: end });
    const farther = new Date(end.getTime() + 1000);
    expect(await codeOf(grant("later", "adam", "user:rose", READ, { expireTime: farther }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(grant("later", "adam", "user:adam", ADMIN, { expireTime: farther }))).toBe(status.PERMISSION_DENIED);
    const { grants } = await s.call<ListGrantsResponse>("listGrants", { mesh: M, name: "later" }, tok.owner);
    expect(grants.map((g) => [g.subject, g.expireTime?.getTime()])).toEqual([["user:adam", end.getTime()]]);
    // Earlier is fine.
    const sooner = new Date(end.getTime() - 1000);
    expect((await grant("later", "adam", "user:rose", READ, { expireTime: sooner })).expireTime?.getTime()).toBe(sooner.getTime());
  });

  it("when ADMIN comes through a time-limited role grant, then a grant to that role (or anyone) inherits its end", async () => {
    await secretWith("via-role", { a: "alpha" });
    const end = new Date(s.clock.now() + 60_000);
    await grant("via-role", "owner", "role:ops", ADMIN, { expireTime: end });
    expect((await grant("via-role", "ops1", "role:ops", ADMIN)).expireTime?.getTime()).toBe(end.getTime());
    expect((await grant("via-role", "ops1", "user:mallory", WRITE)).expireTime?.getTime()).toBe(end.getTime());
  });

  it("when a key-limited ADMIN grants itself or others every key or another key, then PERMISSION_DENIED", async () => {
    await secretWith("out-key", { a: "alpha", b: "beta" });
    await grant("out-key", "owner", "user:kay", ADMIN, { keys: ["a"] });
    expect(await codeOf(grant("out-key", "kay", "user:kay", ADMIN))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(grant("out-key", "kay", "user:kay", ADMIN, { keys: ["a", "b"] }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(grant("out-key", "kay", "user:mallory", READ, { keys: ["b"] }))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(s.call("getSecret", { mesh: M, name: "out-key", keys: ["b"] }, tok.kay))).toBe(status.PERMISSION_DENIED);
  });

  it("when a holder of READ on every key but ADMIN on one grants READ on every key, then PERMISSION_DENIED (no level above its grant on a key)", async () => {
    await secretWith("out-rank", { a: "alpha", b: "beta" });
    await grant("out-rank", "owner", "user:kay", READ);
    await grant("out-rank", "owner", "user:kay", ADMIN, { keys: ["a"] });
    expect(await codeOf(grant("out-rank", "kay", "user:mallory", READ))).toBe(status.PERMISSION_DENIED);
    expect(await codeOf(grant("out-rank", "kay", "user:kay", WRITE, { keys: ["b"] }))).toBe(status.PERMISSION_DENIED);
  });

  it("when the owner or a tenant-admin grants with no expire_time, then the grant has none", async () => {
    await secretWith("unbounded", { a: "alpha" });
    expect((await grant("unbounded", "owner", "user:rose", READ)).expireTime).toBeUndefined();
    expect((await grant("unbounded", "boss", "user:wes", WRITE)).expireTime).toBeUndefined();
  });
});

describe("a key-limited grant allows only its keys' values (#16.7)", () => {
  async function keyLimitedAdmin(name: string): Promise<void> {
    await secretWith(name, { a: "alpha", b: "beta" });
    await grant(name, "owner", "user:kay", ADMIN, { keys: ["a"] });
    await grant(name, "owner", "user:rose", READ);
    await grant(name, "owner", "user:wes", READ, { keys: ["b"] });
  }

  it("when a key-limited ADMIN deletes the secret, then PERMISSION_DENIED and every key is still there", async () => {
    await keyLimitedAdmin("no-delete");
    expect(await codeOf(s.call("deleteSecret", { mesh: M, name: "no-delete" }, tok.kay))).toBe(status.PERMISSION_DENIED);
    expect(await valuesOf("no-delete")).toEqual({ a: "alpha", b: "beta" });
  });

  it("when a key-limited ADMIN revokes a grant that reaches other keys, then it is left alone (NOT_FOUND) and the grantee keeps reading", async () => {
    await keyLimitedAdmin("no-revoke");
    expect(await codeOf(s.call("revokeAccess", { mesh: M, name: "no-revoke", subject: "user:rose" }, tok.kay))).toBe(status.NOT_FOUND);
    expect(await codeOf(s.call("revokeAccess", { mesh: M, name: "no-revoke", subject: "user:wes", permission: READ }, tok.kay))).toBe(status.NOT_FOUND);
    expect(Buffer.from((await s.call<Secret>("getSecret", { mesh: M, name: "no-revoke", keys: ["b"] }, tok.rose)).data.b!).toString()).toBe("beta");
    await s.call("getSecret", { mesh: M, name: "no-revoke", keys: ["b"] }, tok.wes);
    // Within its keys it may revoke.
    await grant("no-revoke", "kay", "user:mallory", READ, { keys: ["a"] });
    await s.call("revokeAccess", { mesh: M, name: "no-revoke", subject: "user:mallory" }, tok.kay);
  });

  it("when a key-limited ADMIN re-grants a subject whose grant reaches other keys, then PERMISSION_DENIED and that grant is unchanged", async () => {
    await keyLimitedAdmin("no-narrowing");
    expect(await codeOf(grant("no-narrowing", "kay", "user:rose", READ, { keys: ["a"] }))).toBe(status.PERMISSION_DENIED);
    const { grants } = await s.call<ListGrantsResponse>("listGrants", { mesh: M, name: "no-narrowing" }, tok.owner);
    expect(grants.find((g) => g.subject === "user:rose")?.keys).toEqual([]);
  });

  it("when a key-limited ADMIN lists grants, then it sees only the grants within its keys", async () => {
    await keyLimitedAdmin("no-peek");
    await grant("no-peek", "kay", "user:mallory", READ, { keys: ["a"] });
    const { grants } = await s.call<ListGrantsResponse>("listGrants", { mesh: M, name: "no-peek" }, tok.kay);
    expect(grants.map((g) => g.subject).sort()).toEqual(["user:kay", "user:mallory"]);
    const all = await s.call<ListGrantsResponse>("listGrants", { mesh: M, name: "no-peek" }, tok.owner);
    expect(all.grants).toHaveLength(4);
  });

  it("when a key-limited ADMIN or WRITER changes secret-wide metadata, then PERMISSION_DENIED and nothing changes", async () => {
    await keyLimitedAdmin("no-meta");
    await grant("no-meta", "owner", "user:mallory", WRITE, { keys: ["a"] });
    const changes = [
      { description: "mine now" },
      { labels: { team: "x" } },
      { annotations: { note: "x" } },
      { expireTime: new Date(s.clock.now() + 1000) },
      { updateMask: ["expire_time"] },
    ];
    const before = await s.call<Secret>("getSecret", { mesh: M, name: "no-meta" }, tok.owner);
    for (const who of ["kay", "mallory"]) {
      for (const change of changes) {
        const code = await codeOf(s.call("updateSecret", { mesh: M, name: "no-meta", etag: before.etag, ...change }, tok[who]));
        expect(code, `${who} ${JSON.stringify(change)}`).toBe(status.PERMISSION_DENIED);
      }
    }
    const after = await s.call<Secret>("getSecret", { mesh: M, name: "no-meta" }, tok.owner);
    expect(after.etag).toBe(before.etag);
    expect(after.expireTime).toBeUndefined();
  });

  it("when a key-limited writer guesses a key it cannot read, then right and wrong guesses get the same answer (no equality oracle)", async () => {
    // A value no timestamp, uuid or duration in a log line can contain by chance (a bare 4711 did).
    const PIN = "pin-4711-qz";
    await secretWith("pin", { a: "alpha", pin: PIN });
    await grant("pin", "owner", "user:wes", WRITE, { keys: ["a"] });
    const etag = await etagOf("pin");
    const right = await detailsOf(s.call("updateSecret", { mesh: M, name: "pin", etag, stringData: { a: "A", pin: PIN } }, tok.wes));
    const wrong = await detailsOf(s.call("updateSecret", { mesh: M, name: "pin", etag, stringData: { a: "A", pin: "0000" } }, tok.wes));
    expect(right.code).toBe(status.PERMISSION_DENIED);
    expect(right).toEqual(wrong);
    expect(right.details).not.toContain(PIN);
    expect(s.logs.join("\n")).not.toContain(PIN);
    expect(await valuesOf("pin")).toEqual({ a: "alpha", pin: PIN });
  });

  it("when a key-limited writer sends only its keys, then they are merged into the current version and the other keys stay", async () => {
    await secretWith("merge", { a: "alpha", b: "beta", c: "gamma" });
    await grant("merge", "owner", "user:wes", WRITE, { keys: ["a"] });
    const updated = await s.call<Secret>("updateSecret", { mesh: M, name: "merge", etag: await etagOf("merge"), stringData: { a: "A" } }, tok.wes);
    expect(updated.version).toBe(2);
    expect(updated.keys).toEqual(["a", "b", "c"]);
    expect(await valuesOf("merge")).toEqual({ a: "A", b: "beta", c: "gamma" });
  });
});
