/**
 * The watch hub: every open WatchProjection of this process, indexed by the secrets its
 * items name, fed by the storage change feed (never by polling the data). A change marks
 * the watches of its secret dirty; dirty watches are re-projected in chunks per event-loop
 * turn, and one whose projection revision moved gets one message. Grants and secrets that
 * run out are met by a timer per watch; the token's exp ends the watch. Each watch holds
 * consumer leases on the secrets it reads (consumer-leases.ts).
 */
import { openData } from "../domain/barrier.js";
import { SecretdError } from "../errors.js";
import type { Principal } from "../domain/principal.js";
import { readProjection, validateRequest, type ProjectionDeps } from "../domain/projection.js";

type ProjectionRead = Awaited<ReturnType<typeof readProjection>>;
import type { ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import type { ChangeFeed, FeedEvent, FeedSubscription } from "../storage/change-feed.js";
import type { SecretRow, SourceVersion, VersionRow } from "../storage/storage.js";
import { accessDeadline } from "./access-deadline.js";
import type { ConsumerLeases } from "./consumer-leases.js";
import { Watch, type WatchSink } from "./watch.js";

export interface WatchHubOptions {
  readonly projection: ProjectionDeps;
  readonly feed: ChangeFeed;
  readonly leases: ConsumerLeases;
  readonly maxWatchesPerTenant: number;
  /** Watches re-projected per event-loop turn, so a burst never blocks the loop for long. */
  readonly chunk?: number;
  readonly now?: () => number;
  /** Failures that have no stream to go to (a lease write); logged by the caller. */
  readonly onError?: (err: unknown) => void;
}

export interface WatchHandle {
  readonly id: string;
  /** The client went away: forget the watch and its leases. */
  close(): void;
}

/** The source versions a projection carries, by secret uid (what an ack of it records). */
function sourcesOf(read: ProjectionRead): SourceVersion[] {
  const out: SourceVersion[] = [];
  for (const s of read.projection.sources) {
    const uid = read.rows.get(s.name)?.secret.uid;
    if (uid !== undefined) out.push({ uid, version: s.version, mesh: s.mesh, name: s.name });
  }
  // Kept with the watch's last sends: a copy is exact-size, a pushed array has 17 slots.
  return out.slice();
}

/**
 * Bytes of watch state (the requests and principals the hub keeps, see watchStateBytes)
 * one tenant may hold per server process (#27): the watch count alone let one role-less
 * caller's 10,000 watches of ~2 MiB requests (optional items, long paths) keep ~20 GB.
 */
export const MAX_WATCH_BYTES_PER_TENANT = 64 * 1024 * 1024;

/** An upper bound of what a kept watch holds: strings at 2 bytes a character, 64 bytes an object. */
export function watchStateBytes(p: Principal, request: ProjectSecretsRequest): number {
  let n = 512 + 2 * (p.sub.length + p.tenant.length + request.mesh.length);
  for (const r of p.roles) n += 64 + 2 * r.length;
  for (const m of p.meshes ?? []) n += 64 + 2 * m.length;
  for (const item of request.items) {
    n += 64 + 2 * (item.name.length + item.envPrefix.length + item.stage.length);
    for (const k of item.keys) n += 64 + 2 * (k.key.length + k.env.length + k.path.length);
  }
  return n;
}

/** setTimeout's limit (~24.8 days): a longer wait is re-armed when it fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WatchHub {
  readonly #watches = new Set<Watch>();
  readonly #byKey = new Map<string, Set<Watch>>();
  /** Open watches and their watchStateBytes, per tenant. */
  readonly #perTenant = new Map<string, { watches: number; bytes: number }>();
  readonly #queue: Watch[] = [];
  #drainScheduled = false;
  #closed = false;
  readonly #subscription: FeedSubscription;
  readonly #now: () => number;
  readonly #chunk: number;
  readonly #projection: ProjectionDeps;
  /**
   * Values opened during this event-loop turn, by uid and version: the 1,000 watchers of
   * one secret decrypt it once per turn, not 1,000 times. Dropped at the end of the turn,
   * so plaintext lives no longer than the evaluations that use it.
   */
  readonly #opened = new Map<string, Map<string, Buffer>>();
  #openedClearScheduled = false;

  constructor(private readonly options: WatchHubOptions) {
    this.#now = options.now ?? Date.now;
    this.#chunk = options.chunk ?? 256;
    this.#projection = { ...options.projection, open: (row, version) => this.#open(row, version) };
    this.#subscription = options.feed.subscribe((ev) => this.#onFeed(ev));
  }

  /** Open watches in this process (for metrics). */
  get openWatches(): number {
    return this.#watches.size;
  }

  /**
   * Opens a watch: its first message (or error) follows through the sink. Throws
   * UNAVAILABLE while shutting down, RESOURCE_EXHAUSTED past the tenant's limit and
   * INVALID_ARGUMENT for a request that could never be projected (checked before the
   * watch is kept: a refused request holds nothing for the watch's life).
   */
  open(p: Principal, request: ProjectSecretsRequest, sink: WatchSink): WatchHandle {
    if (this.#closed) throw new SecretdError("UNAVAILABLE", "the server is shutting down; reconnect to another instance or retry");
    validateRequest(request);
    const held = this.#perTenant.get(p.tenant) ?? { watches: 0, bytes: 0 };
    if (held.watches >= this.options.maxWatchesPerTenant) {
      throw new SecretdError("RESOURCE_EXHAUSTED", `the tenant already has ${held.watches} open watches on this server (limit ${this.options.maxWatchesPerTenant})`);
    }
    const bytes = watchStateBytes(p, request);
    if (held.bytes + bytes > MAX_WATCH_BYTES_PER_TENANT) {
      throw new SecretdError("RESOURCE_EXHAUSTED", `the tenant's open watches on this server already hold ${held.bytes} bytes of requests (at most ${MAX_WATCH_BYTES_PER_TENANT}): close watches, or watch with shorter requests`);
    }
    const w = new Watch(p, request, sink, this.#now(), bytes, this.#forgetWatch);
    this.#watches.add(w);
    this.#perTenant.set(p.tenant, { watches: held.watches + 1, bytes: held.bytes + bytes });
    for (const key of w.keys) {
      let set = this.#byKey.get(key);
      if (set === undefined) this.#byKey.set(key, (set = new Set()));
      set.add(w);
    }
    this.#armTokenTimer(w);
    this.#kick(w);
    return w;
  }

  /** Ends every watch with UNAVAILABLE (clients retry elsewhere), refuses new ones, releases the leases. */
  async shutdown(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscription.close();
    const ending = new SecretdError("UNAVAILABLE", "the server is shutting down; reconnect to another instance or retry");
    for (const w of [...this.#watches]) this.#end(w, ending);
    await this.options.leases.close();
  }

  #onFeed(ev: FeedEvent): void {
    if (ev.type === "changes") {
      for (const c of ev.changes) {
        const set = this.#byKey.get(`${c.tenant}\0${c.mesh}\0${c.name}`);
        if (set !== undefined) for (const w of set) this.#kick(w);
      }
    } else if (ev.reason === "compacted") {
      // Changes were lost to us: every watch re-reads (those whose bytes are equal send nothing).
      for (const w of this.#watches) this.#kick(w);
    }
    // "unattributed" commits (a lease renewal of another replica, a tool on the file) carry
    // no change of a secret or grant: every such write through secretd has its change row.
  }

  #open(row: SecretRow, version: VersionRow): Map<string, Buffer> {
    const key = `${row.uid}\0${version.version}`;
    const hit = this.#opened.get(key);
    if (hit !== undefined) return hit;
    const data = openData(this.options.projection.keyring, row, version, this.options.projection.plaintexts);
    this.#opened.set(key, data);
    if (!this.#openedClearScheduled) {
      this.#openedClearScheduled = true;
      setImmediate(() => {
        this.#opened.clear();
        this.#openedClearScheduled = false;
      });
    }
    return data;
  }

  #kick(w: Watch): void {
    if (w.ended) return;
    // A change that comes after the token's exp (its timer late on a loaded loop, or the
    // clock moved) ends the watch instead of being evaluated for an expired caller.
    if (this.#tokenExpired(w)) return;
    w.dirty = true;
    if (w.running || w.inFlight || w.queued) return;
    w.queued = true;
    this.#queue.push(w);
    if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      setImmediate(() => this.#drain());
    }
  }

  #drain(): void {
    const batch = this.#queue.splice(0, this.#chunk);
    if (this.#queue.length > 0) setImmediate(() => this.#drain());
    else this.#drainScheduled = false;
    for (const w of batch) {
      w.queued = false;
      if (!w.ended) void this.#evaluate(w);
    }
  }

  async #evaluate(w: Watch): Promise<void> {
    w.running = true;
    w.dirty = false;
    try {
      const read = await readProjection(this.#projection, w.principal, w.request);
      if (w.ended) return;
      const uids = new Set<string>();
      for (const s of read.projection.sources) {
        const uid = read.rows.get(s.name)?.secret.uid;
        if (uid !== undefined) uids.add(uid);
      }
      await this.#syncLeases(w, uids, read.projection.revision);
      if (w.ended) return;
      this.#armDeadline(w, accessDeadline(w.principal, read.rows.values(), read.now));
      const first = !w.evaluated;
      w.evaluated = true;
      if (read.projection.revision === w.revision && first && w.revision !== "") {
        // Reconnected holding this revision (known_revision): it counts as applied, or a
        // consumer that reconnects would stay behind in every rollout until the next change.
        await this.options.leases.noteHeld(w.id, w.revision, sourcesOf(read), this.#now());
      } else if (read.projection.revision !== w.revision) {
        w.revision = read.projection.revision;
        w.inFlight = true;
        // Recorded before it goes out, so its ack may land on any replica (consumer-leases.ts).
        await this.options.leases.noteSent(w.id, w.revision, sourcesOf(read));
        if (w.ended) return;
        w.sink.send({ ...read.projection, consumerId: w.id }, () => {
          w.inFlight = false;
          if (w.dirty) {
            w.dirty = false;
            this.#kick(w);
          }
        });
      }
    } catch (err) {
      this.#end(w, err);
    } finally {
      w.running = false;
      if (w.dirty && !w.inFlight && !w.ended) {
        w.dirty = false;
        this.#kick(w);
      }
    }
  }

  /** Leases follow the sources: added before a message that reads a new secret goes out. */
  async #syncLeases(w: Watch, uids: ReadonlySet<string>, revision: string): Promise<void> {
    const held = new Set(w.uids);
    const added = [...uids].filter((u) => !held.has(u));
    const removed = w.uids.filter((u) => !uids.has(u));
    if (added.length === 0 && removed.length === 0) return;
    w.uids = [...uids];
    const leases = this.options.leases;
    if (removed.length > 0) leases.drop(w.id, removed).catch((err: unknown) => this.options.onError?.(err));
    if (added.length > 0) await leases.hold(w.id, w.principal, added, revision, w.since);
  }

  readonly #onDeadline = (w: Watch): void => this.#kick(w);

  #armDeadline(w: Watch, at: number | undefined): void {
    clearTimeout(w.deadlineTimer);
    w.deadlineTimer = undefined;
    if (at === undefined) return;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - this.#now()) + 1);
    w.deadlineTimer = setTimeout(this.#onDeadline, delay, w);
  }

  /** One function for every watch's token timer (a closure apiece would cost ~100 bytes a watch). */
  readonly #onTokenTimer = (w: Watch): void => this.#armTokenTimer(w);

  #armTokenTimer(w: Watch): void {
    const exp = w.principal.exp;
    if (exp === undefined || this.#tokenExpired(w)) return;
    w.tokenTimer = setTimeout(this.#onTokenTimer, Math.min(MAX_TIMER_MS, exp * 1000 - this.#now()), w);
  }

  /** True, and the watch ended UNAUTHENTICATED, when its token's exp has passed. */
  #tokenExpired(w: Watch): boolean {
    const exp = w.principal.exp;
    if (exp === undefined || exp * 1000 - this.#now() > 0) return false;
    this.#end(w, new SecretdError("UNAUTHENTICATED", "the token expired; reconnect with a fresh token"));
    return true;
  }

  #end(w: Watch, err: unknown): void {
    if (w.ended) return;
    this.#forget(w);
    w.sink.end(err);
  }

  readonly #forgetWatch = (w: Watch): void => this.#forget(w);

  #forget(w: Watch): void {
    if (w.ended) return;
    w.ended = true;
    w.clearTimers();
    this.#watches.delete(w);
    const held = this.#perTenant.get(w.principal.tenant);
    if (held !== undefined) {
      held.watches--;
      held.bytes -= w.bytes;
      if (held.watches <= 0) this.#perTenant.delete(w.principal.tenant);
    }
    for (const key of w.keys) {
      const set = this.#byKey.get(key);
      set?.delete(w);
      if (set?.size === 0) this.#byKey.delete(key);
    }
    if (w.uids.length > 0 && !this.#closed) this.options.leases.drop(w.id).catch((err: unknown) => this.options.onError?.(err));
  }
}
