/**
 * The change feed: what changed in the store, in commit order (etcd's watchable store,
 * Kubernetes' watch cache). Every committed write through Storage carries a store-wide,
 * strictly increasing revision and reaches every subscriber of every process on the same
 * data: in this process right after the commit, from another process within 100 ms. The
 * read cache, WatchProjection and consumer leases all listen here; there is no second
 * notification path. A back-end implements ChangeFeed; ChangeFanout is the in-process half
 * (subscribers, a bounded window of recent changes, resume by revision) it can reuse.
 */

export type ChangeKind = "secret-created" | "secret-updated" | "secret-deleted" | "secret-rekeyed" | "grant-put" | "grant-revoked";

export interface Change {
  readonly revision: number;
  readonly kind: ChangeKind;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
  readonly uid: string;
}

/**
 * What a subscriber receives, in revision order:
 * - "changes": committed changes, each revision exactly once;
 * - "resync": the subscriber cannot be told exactly what changed — it resumed from a
 *   revision older than the retained window, the back-end fell behind its own window, or
 *   a commit arrived that carried no change (a tool writing the file directly). Whatever
 *   it derived from the store must be re-read; `revision` is where the feed stands now.
 */
export type FeedEvent =
  | { readonly type: "changes"; readonly changes: readonly Change[] }
  | { readonly type: "resync"; readonly revision: number; readonly reason: "compacted" | "unattributed" };

export type FeedListener = (event: FeedEvent) => void;

export interface FeedSubscription {
  /** The revision the subscriber is current with when subscribe returns. */
  readonly revision: number;
  close(): void;
}

export interface ChangeFeed {
  /** The last revision this process has seen committed (0 on an empty store). */
  revision(): number;
  /**
   * Listens from now on; with `fromRevision`, first replays every change after it
   * (synchronously, before subscribe returns), or sends "resync" when the window no
   * longer reaches back that far. Listeners run synchronously in commit order and must
   * not throw (a throw is caught and reported to the feed's onError).
   */
  subscribe(listener: FeedListener, fromRevision?: number): FeedSubscription;
}

export interface FanoutOptions {
  /** Recent changes kept in memory for subscribers that resume. */
  readonly window: number;
  readonly onError?: (err: unknown) => void;
}

/**
 * The in-process side of a feed: publishes batches to subscribers and keeps the last
 * `window` changes, so a subscriber resuming from a recent revision catches up from
 * memory; older ones ask `older` (the back-end's change table) or get "resync".
 */
export class ChangeFanout {
  readonly #listeners = new Set<FeedListener>();
  readonly #recent: Change[] = [];
  #revision: number;

  constructor(
    revision: number,
    private readonly options: FanoutOptions,
    /** Changes after `revision` from durable storage, or undefined when compacted past it. */
    private readonly older: (revision: number) => readonly Change[] | undefined,
  ) {
    this.#revision = revision;
  }

  get revision(): number {
    return this.#revision;
  }

  get subscribers(): number {
    return this.#listeners.size;
  }

  publish(changes: readonly Change[]): void {
    const fresh = changes.filter((c) => c.revision > this.#revision);
    if (fresh.length === 0) return;
    this.#revision = fresh[fresh.length - 1]!.revision;
    this.#recent.push(...fresh);
    if (this.#recent.length > this.options.window) this.#recent.splice(0, this.#recent.length - this.options.window);
    this.#emit({ type: "changes", changes: fresh });
  }

  /** Tells every subscriber to re-read; the feed now stands at `revision`. */
  resync(revision: number, reason: "compacted" | "unattributed"): void {
    if (reason === "compacted") this.#recent.length = 0;
    this.#revision = Math.max(this.#revision, revision);
    this.#emit({ type: "resync", revision: this.#revision, reason });
  }

  subscribe(listener: FeedListener, fromRevision?: number): FeedSubscription {
    if (fromRevision !== undefined && fromRevision < this.#revision) {
      const replay = this.#since(fromRevision);
      this.#call(listener, replay === undefined ? { type: "resync", revision: this.#revision, reason: "compacted" } : { type: "changes", changes: replay });
    }
    this.#listeners.add(listener);
    return {
      revision: this.#revision,
      close: () => {
        this.#listeners.delete(listener);
      },
    };
  }

  #since(revision: number): readonly Change[] | undefined {
    const first = this.#recent[0];
    if (first !== undefined && first.revision <= revision + 1) return this.#recent.filter((c) => c.revision > revision);
    const rows = this.older(revision);
    return rows?.filter((c) => c.revision <= this.#revision);
  }

  #emit(event: FeedEvent): void {
    for (const l of [...this.#listeners]) this.#call(l, event);
  }

  #call(listener: FeedListener, event: FeedEvent): void {
    try {
      listener(event);
    } catch (err) {
      this.options.onError?.(err);
    }
  }
}
