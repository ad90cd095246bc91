/**
 * What the row-integrity suite asks of any back-end (row-integrity.test.ts on SQLite,
 * row-integrity-postgres.test.ts on PostgreSQL behind two replicas): the principals, the
 * mesh, and how a secret answers, in one place, so both runners check the same answers.
 */
import { status, type ServiceError } from "@grpc/grpc-js";
import { expect } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { TestServer } from "../helpers/server.js";

export const M = "rows";
export const ALICE = { tenant: "acme", sub: "alice", roles: ["data-developer"] };
export const MALLORY = { tenant: "acme", sub: "mallory", roles: ["data-developer"] };
export const BOB = { tenant: "acme", sub: "bob", roles: [] };
export const DATA_LOSS_MESSAGE = "stored secret data failed to authenticate";


export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The value of key `k` (default "v") read by GetSecret, or the status code. */
export async function read(s: TestServer, token: string, name: string, opts: { version?: number; key?: string } = {}): Promise<string | number> {
  try {
    const got = await s.call<Secret>("getSecret", { mesh: M, name, version: opts.version ?? 0 }, token);
    return Buffer.from(got.data[opts.key ?? "v"] ?? new Uint8Array()).toString("utf8");
  } catch (e) {
    const err = e as ServiceError;
    if (err.code === status.DATA_LOSS) expect(err.details).toBe(DATA_LOSS_MESSAGE);
    return err.code;
  }
}

export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return status.OK;
  } catch (e) {
    return (e as ServiceError).code;
  }
}

export async function listed(s: TestServer, token: string): Promise<string[]> {
  return (await s.call<{ secrets: Secret[] }>("listSecrets", { mesh: M }, token)).secrets.map((x) => x.name);
}
