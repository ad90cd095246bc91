/**
 * The resource ledger (#27): every byte the server holds for a caller is charged to whom
 * it belongs, on grpc-js's calls and the node:http2 route alike, and each owner has a bound.
 *
 *  - Inbound: request-body bytes buffered before a call runs (so before authentication),
 *    charged per stream, per connection and per peer address. Each DATA chunk costs its
 *    length plus `chunkCost` (grpc-js keeps a Buffer object per chunk: ~135 heap bytes per
 *    1-byte frame), so small frames are no amplifier. The charge is released when the body
 *    ends (END_STREAM) or the stream closes. A stream past a bound is reset with
 *    ENHANCE_YOUR_CALM (clients report RESOURCE_EXHAUSTED); one whose body has not ended
 *    within `bodyTimeoutMs` of its headers with CANCEL (CANCELLED).
 *  - Outbound: answer bytes written and not yet taken by the peer (each stream's
 *    `writableLength`, which is what HTTP/2 flow control holds back, plus the socket's),
 *    charged per connection and, once a call is authenticated, per tenant. `admit()` refuses
 *    a new answer (RESOURCE_EXHAUSTED, a SecretdError) past either bound. A connection that
 *    holds output and drains less than `minDrainRate` bytes/s (or less than all it held)
 *    over `stallMs` is closed: progress is a rate, not "a byte".
 *
 * The hot path is a Map lookup and integer adds: a stream's outbound bytes are refreshed
 * when an answer is written (`wrote`) and by `sweep()`, which the connection guard runs a
 * few times a second. Everything is per server process (with --workers N, per worker).
 */
import http2 from "node:http2";
import { SecretdError } from "../../errors.js";

export interface LedgerLimits {
  /** Buffered request bytes of one stream (chunk costs included). */
  readonly inboundPerStream: number;
  readonly inboundPerConnection: number;
  /** Per peer IP address, over all its connections. */
  readonly inboundPerPeer: number;
  /** A request body must end this long after its headers; 0 = no deadline. */
  readonly bodyTimeoutMs: number;
  /** Unread answer bytes of one tenant, over all its streams and connections. */
  readonly outboundPerTenant: number;
  readonly outboundPerConnection: number;
  /** Bytes per second a connection holding output must drain; the window is `stallMs`. */
  readonly minDrainRate: number;
  /** The drain window; 0 = connections are never closed for draining slowly. */
  readonly stallMs: number;
}

/** What the ledger reads of a node:http2 stream (a fake in unit tests). */
export interface LedgerStream {
  readonly writableLength: number;
  readonly destroyed: boolean;
  /** "data" listeners get the chunk; "end", "close" and "error" ones ignore their arguments. */
  on(event: "data" | "end" | "close" | "error", l: (chunk: Buffer) => void): unknown;
  off(event: "data" | "end", l: (chunk: Buffer) => void): unknown;
  close(code?: number): void;
}

/** What the ledger reads of a connection. */
export interface LedgerSocket {
  readonly bytesWritten: number;
  readonly writableLength: number;
}

/** Heap a buffered DATA chunk costs beyond its bytes (a Buffer object and its slot). */
export const CHUNK_COST = 128;
/**
 * Small frames cost CPU per frame, not only heap: a request body (not a streaming one)
 * may arrive in at most SMALL_CHUNKS_PER_BODY chunks shorter than SMALL_CHUNK bytes
 * (an honest client sends 16 KiB frames: a 2 MiB body is ~128 of them); past it the
 * stream is reset with ENHANCE_YOUR_CALM. A connection with SMALL_FRAME_STRIKES such
 * resets is closed, and its peer's new connections are closed at once for PENALTY_MS.
 */
export const SMALL_CHUNK = 1024;
export const SMALL_CHUNKS_PER_BODY = 1024;
export const SMALL_FRAME_STRIKES = 4;
export const PENALTY_MS = 60_000;

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL } = http2.constants;

class Peer {
  inbound = 0;
  connections = 0;
  constructor(readonly address: string) {}
}

class Tenant {
  outbound = 0;
  streams = 0;
  constructor(readonly name: string) {}
}

class LedgerConnection {
  inbound = 0;
  /** Streams reset for small frames. */
  strikes = 0;
  /** Sum of its streams' outbound bytes as last seen. */
  outbound = 0;
  readonly streams = new Set<Entry>();
  /** The drain window: whether output is held, since when, the socket's bytesWritten then, and what was held. */
  holding = false;
  windowStart = 0;
  windowWritten = 0;
  windowHeld = 0;
  constructor(
    readonly socket: LedgerSocket,
    readonly peer: Peer,
    readonly destroy: () => void,
  ) {}
}

class Entry {
  inbound = 0;
  smallChunks = 0;
  outbound = 0;
  tenant: Tenant | undefined = undefined;
  bodyDone = false;
  constructor(
    readonly stream: LedgerStream,
    readonly conn: LedgerConnection,
    readonly chunkCost: number,
    /** A streaming request (reflection): its body has no deadline. */
    readonly openRequest: boolean,
    readonly since: number,
  ) {}
}

/** Counts of what the ledger did, for tests and diagnosis. */
export interface LedgerStats {
  overBudgetResets: number;
  deadlineResets: number;
  smallFrameResets: number;
  /** Connections closed for small frames, and new ones of a penalised peer. */
  smallFrameClosed: number;
  slowConnectionsClosed: number;
}

const ignore = (): void => undefined;

export class ResourceLedger {
  readonly limits: LedgerLimits;
  readonly stats: LedgerStats = { overBudgetResets: 0, deadlineResets: 0, smallFrameResets: 0, smallFrameClosed: 0, slowConnectionsClosed: 0 };
  readonly #streams = new Map<LedgerStream, Entry>();
  /** By the session they belong to (any object in unit tests). */
  readonly #connections = new Map<object, LedgerConnection>();
  readonly #peers = new Map<string, Peer>();
  readonly #tenants = new Map<string, Tenant>();
  /** Peer addresses whose new connections are closed, until when. */
  readonly #penalised = new Map<string, number>();
  readonly #now: () => number;
  // Shared listeners: `this` is the stream, found in #streams.
  readonly #onData: (this: LedgerStream, chunk: Buffer) => void;
  readonly #onEnd: (this: LedgerStream) => void;
  readonly #onClose: (this: LedgerStream) => void;

  constructor(limits: LedgerLimits, now: () => number = Date.now) {
    this.limits = limits;
    this.#now = now;
    const received = this.received.bind(this);
    const bodyEnded = this.bodyEnded.bind(this);
    const closed = this.closed.bind(this);
    this.#onData = function (chunk) {
      received(this, chunk.length);
    };
    this.#onEnd = function () {
      bodyEnded(this);
    };
    this.#onClose = function () {
      closed(this);
    };
  }

  /** The connection `key` (its session) from `address` (an IP address); `destroy` closes it. */
  connect(key: object, socket: LedgerSocket, address: string, destroy: () => void): void {
    const until = this.#penalised.get(address);
    if (until !== undefined) {
      if (this.#now() < until) {
        this.stats.smallFrameClosed++;
        destroy();
        return;
      }
      this.#penalised.delete(address);
    }
    let peer = this.#peers.get(address);
    if (peer === undefined) {
      peer = new Peer(address);
      this.#peers.set(address, peer);
    }
    peer.connections++;
    this.#connections.set(key, new LedgerConnection(socket, peer, destroy));
  }

  disconnect(key: object): void {
    const conn = this.#connections.get(key);
    if (conn === undefined) return;
    this.#connections.delete(key);
    for (const e of conn.streams) this.closed(e.stream);
    const peer = conn.peer;
    if (--peer.connections <= 0) this.#peers.delete(peer.address);
  }

  /**
   * Follows a new stream of connection `key` before anyone else reads it: its body is
   * charged from the first byte. `chunkCost`: what each chunk costs beyond its bytes while
   * buffered. A stream of an unknown connection is not followed. `listenClose` false: the
   * caller's own "close" listener calls `closed`.
   */
  track(key: object | undefined, stream: LedgerStream, chunkCost: number, openRequest: boolean, listenClose = true): void {
    const conn = key === undefined ? undefined : this.#connections.get(key);
    if (conn === undefined) return;
    const e = new Entry(stream, conn, chunkCost, openRequest, this.#now());
    this.#streams.set(stream, e);
    conn.streams.add(e);
    stream.on("data", this.#onData);
    stream.on("end", this.#onEnd);
    if (listenClose) stream.on("close", this.#onClose);
  }

  /** Charges `bytes` of request body; resets the stream (and returns false) past a bound. */
  received(stream: LedgerStream, bytes: number): boolean {
    const e = this.#streams.get(stream);
    if (e === undefined || e.bodyDone) return true;
    const conn = e.conn;
    if (!e.openRequest && bytes < SMALL_CHUNK && ++e.smallChunks > SMALL_CHUNKS_PER_BODY) {
      this.stats.smallFrameResets++;
      this.#reset(e, NGHTTP2_ENHANCE_YOUR_CALM);
      if (++conn.strikes >= SMALL_FRAME_STRIKES) {
        this.#penalised.set(conn.peer.address, this.#now() + PENALTY_MS);
        this.stats.smallFrameClosed++;
        conn.destroy();
      }
      return false;
    }
    const cost = bytes + e.chunkCost;
    e.inbound += cost;
    conn.inbound += cost;
    conn.peer.inbound += cost;
    const l = this.limits;
    if (e.inbound > l.inboundPerStream || conn.inbound > l.inboundPerConnection || conn.peer.inbound > l.inboundPerPeer) {
      this.stats.overBudgetResets++;
      this.#reset(e, NGHTTP2_ENHANCE_YOUR_CALM);
      return false;
    }
    return true;
  }

  /** The request body ended: its bytes are no longer buffered by the transport. */
  bodyEnded(stream: LedgerStream): void {
    const e = this.#streams.get(stream);
    if (e !== undefined) this.#release(e);
    // Nothing more to charge: an idle watch keeps no listener arrays for a body long read.
    stream.off("data", this.#onData);
    stream.off("end", this.#onEnd);
  }

  closed(stream: LedgerStream): void {
    const e = this.#streams.get(stream);
    if (e === undefined) return;
    this.#streams.delete(stream);
    this.#release(e);
    e.conn.streams.delete(e);
    e.conn.outbound -= e.outbound;
    const t = e.tenant;
    if (t !== undefined) {
      t.outbound -= e.outbound;
      if (--t.streams === 0) this.#tenants.delete(t.name);
    }
    e.outbound = 0;
  }

  /**
   * Whether an answer of `tenant` may be written on `stream` now; the stream is charged
   * to the tenant from now on. Refused past the tenant's or the connection's bound.
   */
  admit(stream: LedgerStream | undefined, tenant: string): SecretdError | undefined {
    const e = stream === undefined ? undefined : this.#streams.get(stream);
    let t = e?.tenant ?? this.#tenants.get(tenant);
    if (e !== undefined && e.tenant === undefined) {
      if (t === undefined) {
        t = new Tenant(tenant);
        this.#tenants.set(tenant, t);
      }
      e.tenant = t;
      t.streams++;
      t.outbound += e.outbound;
    }
    const l = this.limits;
    if (t !== undefined && t.outbound > l.outboundPerTenant) {
      return new SecretdError("RESOURCE_EXHAUSTED", `this tenant has more than ${l.outboundPerTenant} bytes of answers its clients have not read: read them, or retry later`);
    }
    if (e !== undefined) {
      const pending = e.conn.outbound + e.conn.socket.writableLength;
      if (pending > l.outboundPerConnection) {
        return new SecretdError("RESOURCE_EXHAUSTED", `this connection has ${pending} bytes of answers its client has not read (at most ${l.outboundPerConnection}): read them, or use another connection`);
      }
    }
    return undefined;
  }

  /** An answer was written on `stream`: its unread bytes are charged now, not at the next sweep. */
  wrote(stream: LedgerStream | undefined): void {
    const e = stream === undefined ? undefined : this.#streams.get(stream);
    if (e !== undefined) this.#refresh(e);
  }

  /** Refreshes outbound bytes, closes connections draining too slowly, resets bodies past their deadline. */
  sweep(): void {
    const now = this.#now();
    const { bodyTimeoutMs, stallMs, minDrainRate } = this.limits;
    for (const conn of this.#connections.values()) {
      for (const e of conn.streams) {
        this.#refresh(e);
        if (bodyTimeoutMs > 0 && !e.bodyDone && !e.openRequest && now - e.since >= bodyTimeoutMs) {
          this.stats.deadlineResets++;
          this.#reset(e, NGHTTP2_CANCEL);
        }
      }
      const held = conn.outbound + conn.socket.writableLength;
      const written = conn.socket.bytesWritten;
      if (held === 0) {
        conn.holding = false;
      } else if (!conn.holding) {
        this.#startWindow(conn, now, written, held);
      } else if (stallMs > 0 && now - conn.windowStart >= stallMs) {
        // Progress: the peer took at least the floor rate, or all it was given.
        const drained = written - conn.windowWritten;
        const floor = Math.min(Math.max(1, (minDrainRate * (now - conn.windowStart)) / 1000), conn.windowHeld);
        if (drained < floor) {
          this.stats.slowConnectionsClosed++;
          conn.destroy();
        } else this.#startWindow(conn, now, written, held);
      }
    }
  }

  /** Current charges, for tests and diagnosis. */
  usage(): { inbound: number; peers: ReadonlyMap<string, number>; tenants: ReadonlyMap<string, number>; streams: number } {
    let inbound = 0;
    for (const c of this.#connections.values()) inbound += c.inbound;
    return {
      inbound,
      peers: new Map([...this.#peers].map(([k, p]) => [k, p.inbound])),
      tenants: new Map([...this.#tenants].map(([k, t]) => [k, t.outbound])),
      streams: this.#streams.size,
    };
  }

  #startWindow(conn: LedgerConnection, now: number, written: number, held: number): void {
    conn.holding = true;
    conn.windowStart = now;
    conn.windowWritten = written;
    conn.windowHeld = held;
  }

  #refresh(e: Entry): void {
    const w = e.stream.writableLength;
    const d = w - e.outbound;
    if (d === 0) return;
    e.outbound = w;
    e.conn.outbound += d;
    if (e.tenant !== undefined) e.tenant.outbound += d;
  }

  #release(e: Entry): void {
    e.bodyDone = true;
    const n = e.inbound;
    if (n === 0) return;
    e.inbound = 0;
    e.conn.inbound -= n;
    e.conn.peer.inbound -= n;
  }

  #reset(e: Entry, code: number): void {
    this.#release(e);
    const s = e.stream;
    if (s.destroyed) return;
    s.on("error", ignore); // a reset stream may emit one; its close follows
    s.close(code);
  }
}
