/**
 * TLS to PostgreSQL (issue #14 item 4): the database URL's libpq-style `sslmode` and
 * `sslrootcert` are honoured. Against a cluster that refuses plaintext TCP, a replica with
 * `sslmode=verify-full` and the right CA serves; one whose CA does not match the server's
 * certificate, or one without TLS, refuses to start with a clear error and no password.
 */
import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { makePki, type Pki } from "../helpers/pki.js";
import { startPostgres, type PostgresCluster } from "../helpers/postgres.js";
import { startTestServer } from "../helpers/server.js";

let pki: Pki;
let other: Pki;
let cluster: PostgresCluster;
let url: string;

beforeAll(async () => {
  pki = makePki();
  other = makePki();
  cluster = await startPostgres({ tls: { cert: pki.file("server.crt"), key: pki.file("server.key") } });
  url = await cluster.createDatabase();
}, 90_000);

afterAll(() => {
  cluster?.stop();
  for (const p of [pki, other]) if (p) rmSync(p.dir, { recursive: true, force: true });
});

/** The failure of a server start, as the message an operator would read. */
async function startFailure(databaseUrl: string): Promise<string> {
  try {
    const s = await startTestServer({ databaseUrl });
    await s.stop();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  throw new Error("expected the server to refuse to start");
}

describe("PostgreSQL over TLS", () => {
  it("when the URL says sslmode=verify-full with the server's CA, then the replica serves over TLS", async () => {
    const s = await startTestServer({ databaseUrl: `${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(pki.file("ca.crt"))}` });
    try {
      const t = await s.token({ tenant: "acme", sub: "alice", roles: ["tenant-admin"] });
      await s.call("createSecret", { mesh: "m", name: "over-tls", stringData: { k: "v" } }, t);
      const got = await s.call<Secret>("getSecret", { mesh: "m", name: "over-tls" }, t);
      expect(Buffer.from(got.data.k!).toString()).toBe("v");
    } finally {
      await s.stop();
    }
  }, 60_000);

  it("when the CA in the URL did not sign the server's certificate, then the start is refused", async () => {
    const msg = await startFailure(`${url.replace("postgres@", "postgres:hunter2-pw@")}?sslmode=verify-full&sslrootcert=${encodeURIComponent(other.file("ca.crt"))}`);
    expect(msg).toMatch(/certificate/i);
    expect(msg).not.toContain("hunter2-pw");
  }, 60_000);

  it("when the URL asks for no TLS, then the cluster's refusal of plaintext stops the start", async () => {
    const msg = await startFailure(`${url}?sslmode=disable`);
    expect(msg).toMatch(/no encryption|pg_hba|SSL/i);
  }, 60_000);
});
