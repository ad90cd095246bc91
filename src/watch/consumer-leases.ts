/**
 * Consumer leases: every open watch holds a lease on the secrets it reads, recorded in
 * storage so any replica can count and list them (DeleteSecret refuses a watched secret,
 * ListConsumers shows who). A lease is one row per watch, its secrets written when they
 * change; it carries no time of its own but lives while this process's heartbeat does
 * (#27 item 5). Every `renewMs` one write renews the heartbeat, and with it every lease
 * of the process, however many watches and sources, to now + `ttlMs`: when the process
 * dies they lapse within ttlMs (under the 30 s SPEC §4 promises). An orderly shutdown
 * ends the heartbeat, so they are dead at once.
 *
 * A heartbeat that lapsed anyway (the process stalled past ttlMs, the database was out
 * of reach) is never revived, since other replicas may have begun pruning its rows: the
 * process starts a new heartbeat under a new name and records every lease it holds again.
 *
 * Acknowledged delivery (#30): before a message goes out, the watch's row records the
 * revision with the source versions it carries (the last SENT_KEPT of them), in one write
 * per event-loop turn for all watches that sent, so an AckProjection landing on any worker
 * or replica can check it (domain/acks.ts). The heartbeat renewal writes nothing more.
 */
import { randomBytes } from "node:crypto";
import os from "node:os";
import { SENT_KEPT } from "../domain/acks.js";
import type { Principal } from "../domain/principal.js";
import type { SentRevision, SourceVersion, Storage, WatchLease, WatchSends } from "../storage/storage.js";

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

/** Revisions are written as they are sent (noteSent), never with the heartbeat. */
const NO_REVISIONS: ReadonlyMap<string, string> = new Map();

export const LEASE_DEFAULTS = { ttlMs: 25_000, renewMs: 8_000 } as const;


/** The longest a message waits for its send to be recorded (the write goes on; an ack of it may be refused until it lands). */
const SEND_WAIT_MS = 1000;

type LeaseStorage = Pick<Storage, "openReplica" | "putLeases" | "deleteLeases" | "renewLeases" | "deleteReplicaLeases" | "recordSent" | "recordAck">;

interface Held {
  readonly p: Principal;
  readonly since: number;
  revision: string;
  /** Arrays, not Sets: a watch reads a few secrets, and a Set's table costs ~130 bytes a watch. */
  uids: readonly string[];
  /** The last SENT_KEPT revisions sent, newest last (exact-size arrays: ~130 bytes a watch less than a pushed one). */
  sent: SentRevision[];
  seq: number;
}

export class ConsumerLeases {
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  /** Watches that sent since the last recordSent, written together on the next turn. */
  #sending = new Set<string>();
  #sendFlush: Promise<void> | undefined;
  /** What this process holds, to record again under a new heartbeat. */
  readonly #held = new Map<string, Held>();
  #generation = 0;
  #name: string;
  /** The current heartbeat's start; undefined before the first lease. */
  #opened: Promise<void> | undefined;
  #closed = false;

  constructor(
    private readonly storage: LeaseStorage,
    private readonly options: LeaseOptions,
  ) {
    this.#now = options.now ?? Date.now;
    this.#name = options.replica;
    this.#timer = setInterval(() => void this.renew(), options.renewMs);
    this.#timer.unref();
  }

  /** The name of this process's current heartbeat (ListConsumers' `replica`). */
  get replica(): string {
    return this.#name;
  }

  /** Leases of one watch on these secrets (added to the ones it holds). */
  async hold(watchId: string, p: Principal, secretUids: readonly string[], revision: string, since: number): Promise<void> {
    if (this.#closed || secretUids.length === 0) return;
    let held = this.#held.get(watchId);
    if (held === undefined) this.#held.set(watchId, (held = { p, since, revision, uids: [], sent: [], seq: 0 }));
    held.revision = revision;
    const had = held.uids;
    held.uids = had.concat(secretUids.filter((u) => !had.includes(u)));
    await this.#heartbeat();
    if (!(await this.storage.putLeases(this.#lease(watchId, held), secretUids, this.#now()))) await this.#restart();
  }

  async drop(watchId: string, secretUids?: readonly string[]): Promise<void> {
    const held = this.#held.get(watchId);
    if (secretUids === undefined) {
      this.#sending.delete(watchId);
      this.#held.delete(watchId);
    } else if (held !== undefined) {
      held.uids = held.uids.filter((u) => !secretUids.includes(u)).slice();
      if (held.uids.length === 0) this.#held.delete(watchId);
    }
    if (this.#closed || secretUids?.length === 0) return;
    await this.storage.deleteLeases(watchId, secretUids);
  }

  /**
   * A watch is about to send `revision`, carrying these source versions: resolves once its
   * row records it (one write for every watch that sent this turn), or after SEND_WAIT_MS.
   * A failed write is reported and resolves too: the message goes out; only an ack of it
   * would be refused.
   */
  noteSent(watchId: string, revision: string, sources: readonly SourceVersion[]): Promise<void> {
    const held = this.#held.get(watchId);
    if (this.#closed || held === undefined) return Promise.resolve();
    held.revision = revision;
    held.sent = held.sent.slice(1 - SENT_KEPT).concat({ seq: ++held.seq, revision, sources });
    this.#sending.add(watchId);
    // Bounded: a database that does not answer delays the messages by at most SEND_WAIT_MS.
    this.#sendFlush ??= new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, SEND_WAIT_MS);
      timer.unref();
      setImmediate(() => void this.#flushSends().finally(() => (clearTimeout(timer), resolve())));
    });
    return this.#sendFlush;
  }

  /**
   * A watch opened with known_revision equal to its projection: nothing is sent, and the
   * revision is recorded as sent and applied (the client said it holds it; a revision
   * cannot be known without its values).
   */
  async noteHeld(watchId: string, revision: string, sources: readonly SourceVersion[], now: number): Promise<void> {
    await this.noteSent(watchId, revision, sources);
    const held = this.#held.get(watchId);
    if (this.#closed || held === undefined) return;
    try {
      await this.storage.recordAck(watchId, { seq: held.seq, revision, time: now, applied: sources });
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  async #flushSends(): Promise<void> {
    const ids = this.#sending;
    this.#sending = new Set();
    this.#sendFlush = undefined;
    try {
      await this.storage.recordSent(this.#sends(ids));
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  #sends(ids: Iterable<string>): WatchSends[] {
    const out: WatchSends[] = [];
    for (const id of ids) {
      const h = this.#held.get(id);
      if (h !== undefined && h.sent.length > 0) out.push({ watchId: id, replica: this.#name, sent: h.sent });
    }
    return out;
  }

  /** One write: the heartbeat. */
  async renew(): Promise<void> {
    if (this.#closed || this.#opened === undefined) return;
    try {
      await this.#opened;
      const now = this.#now();
      const written = await this.storage.renewLeases(this.#name, { now, expireTime: now + this.options.ttlMs }, NO_REVISIONS);
      if (written === 0) await this.#restart();
    } catch (err) {
      this.options.onError?.(err);
    }
  }

  /** Stops renewing and ends this process's heartbeat: its leases are dead at once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#opened === undefined) return;
    try {
      await this.#opened.catch(() => undefined);
      await this.storage.deleteReplicaLeases(this.#name);
    } catch (err) {
      this.options.onError?.(err); // they lapse by themselves within ttlMs
    }
  }

  #lease(watchId: string, h: Held): WatchLease {
    return { watchId, tenant: h.p.tenant, sub: h.p.sub, roles: h.p.roles, revision: h.revision, since: h.since, replica: this.#name };
  }

  /** Starts the heartbeat on the first lease (a failed start is tried again by the next). */
  #heartbeat(): Promise<void> {
    if (this.#opened === undefined) {
      const now = this.#now();
      const opened = this.storage.openReplica(this.#name, { now, expireTime: now + this.options.ttlMs });
      this.#opened = opened;
      opened.catch(() => {
        if (this.#opened === opened) this.#opened = undefined;
      });
    }
    return this.#opened;
  }

  #restarting: Promise<void> | undefined;

  /** The heartbeat lapsed: a new one under a new name, and every lease held recorded again. */
  #restart(): Promise<void> {
    this.#restarting ??= (async () => {
      this.#generation++;
      this.#name = `${this.options.replica}#${this.#generation}`;
      this.#opened = undefined;
      await this.#heartbeat();
      const now = this.#now();
      await Promise.all([...this.#held].map(([id, h]) => this.storage.putLeases(this.#lease(id, h), h.uids, now)));
      await this.storage.recordSent(this.#sends(this.#held.keys()));
    })().finally(() => {
      this.#restarting = undefined;
    });
    return this.#restarting;
  }
}
