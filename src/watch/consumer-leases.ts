/**
 * Consumer leases: every open watch holds one lease per secret it reads, recorded in
 * storage so any replica can count and list them (DeleteSecret refuses a watched secret,
 * ListConsumers shows who). This process renews all of its leases with one write every
 * `renewMs`; each renewal runs them to now + `ttlMs`, so when the process dies they lapse
 * within ttlMs (under the 30 s SPEC §4 promises). An orderly shutdown removes them at once.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import type { Principal } from "../domain/principal.js";
import type { LeaseRow, Storage } from "../storage/storage.js";

export interface LeaseOptions {
  readonly ttlMs: number;
  readonly renewMs: number;
  /** Names this process in ListConsumers; unique per server instance. */
  readonly replica: string;
  readonly now?: () => number;
  readonly onError?: (err: unknown) => void;
}

export function defaultReplicaName(): string {
  return `${os.hostname()}/${process.pid}/${randomBytes(3).toString("hex")}`;
}

export const LEASE_DEFAULTS = { ttlMs: 25_000, renewMs: 8_000 } as const;

type LeaseStorage = Pick<Storage, "putLeases" | "deleteLeases" | "renewLeases" | "deleteReplicaLeases">;

export class ConsumerLeases {
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  /** Revisions sent since the last renewal, written with it (not one write per message). */
  readonly #revisions = new Map<string, string>();
  #closed = false;

  constructor(
    private readonly storage: LeaseStorage,
    private readonly options: LeaseOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.#timer = setInterval(() => void this.renew(), options.renewMs);
    this.#timer.unref();
  }

  get replica(): string {
    return this.options.replica;
  }

  /** Leases of one watch on these secrets (added to the ones it holds). */
  async hold(watchId: string, p: Principal, secretUids: readonly string[], revision: string, since: number): Promise<void> {
    if (this.#closed || secretUids.length === 0) return;
    const now = this.#now();
    const rows: LeaseRow[] = secretUids.map((secretUid) => ({
      watchId,
      secretUid,
      tenant: p.tenant,
      sub: p.sub,
      roles: p.roles,
      revision,
      since,
      lastSeen: now,
      expireTime: now + this.options.ttlMs,
      replica: this.options.replica,
    }));
    await this.storage.putLeases(rows);
  }

  async drop(watchId: string, secretUids?: readonly string[]): Promise<void> {
    if (secretUids === undefined) this.#revisions.delete(watchId);
    if (this.#closed || secretUids?.length === 0) return;
    await this.storage.deleteLeases(watchId, secretUids);
  }

  noteRevision(watchId: string, revision: string): void {
    this.#revisions.set(watchId, revision);
  }

  async renew(): Promise<void> {
    if (this.#closed) return;
    const revisions = new Map(this.#revisions);
    this.#revisions.clear();
    const now = this.#now();
    try {
      await this.storage.renewLeases(this.options.replica, now, now + this.options.ttlMs, revisions);
    } catch (err) {
      for (const [k, v] of revisions) if (!this.#revisions.has(k)) this.#revisions.set(k, v);
      this.options.onError?.(err);
    }
  }

  /** Stops renewing and removes this replica's leases. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    try {
      await this.storage.deleteReplicaLeases(this.options.replica);
    } catch (err) {
      this.options.onError?.(err); // they lapse by themselves within ttlMs
    }
  }
}
