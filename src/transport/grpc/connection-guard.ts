/**
 * Per-connection limits grpc-js has no option for (#16 item 5): how many HTTP/2
 * connections are open (in all, and per peer address), how many response bytes wait
 * for a peer that does not read (per connection, and in all), and how long a connection
 * may hold unread output without the peer taking any of it.
 *
 * grpc-js creates its node:http2 servers itself and exposes neither them nor their
 * sessions, so the guard reads them after bindAsync (grpc-internals.ts). It then
 *  - wraps the servers' "connection" listeners, so a connection past a cap is closed
 *    before HTTP/2 (or TLS) ever starts on it;
 *  - follows every session's streams, so the bytes a connection still has to deliver are
 *    the sum of its streams' `writableLength` (node:http2 keeps what flow control holds
 *    back in each stream's write buffer) plus its socket's;
 *  - sweeps all sessions a few times a second: the total, and connections that hold
 *    output while their socket wrote nothing for `stallMs`, which are destroyed.
 * Unary calls ask `refusal(peer)` before answering and get RESOURCE_EXHAUSTED past a bound.
 * Everything is per server process: with --workers N each worker applies the limits to
 * the connections it holds.
 */
import type http2 from "node:http2";
import type net from "node:net";
import type { Server } from "@grpc/grpc-js";
import { http2ServersOf, peerKey } from "./grpc-internals.js";

export interface ConnectionLimits {
  /** Open connections of this process; 0 = no cap. */
  readonly maxConnections: number;
  /** Open connections from one peer IP address; 0 = no cap. */
  readonly maxConnectionsPerPeer: number;
  /** Unsent response bytes one connection may hold before its calls are refused. */
  readonly maxPendingPerConnection: number;
  /** Unsent response bytes all connections together may hold before calls are refused. */
  readonly maxPendingTotal: number;
  /** A connection holding unsent output whose socket wrote nothing for this long is closed; 0 = never. */
  readonly stallMs: number;
}

export const DEFAULT_PENDING_PER_CONNECTION = 32 * 1024 * 1024;
export const DEFAULT_PENDING_TOTAL = 256 * 1024 * 1024;

interface Tracked {
  readonly session: http2.ServerHttp2Session;
  readonly streams: Set<http2.ServerHttp2Stream>;
  lastWritten: number;
  lastProgress: number;
}

const SWEEP_MS = 100;

function socketOf(s: http2.ServerHttp2Session): net.Socket | undefined {
  return (s.socket as net.Socket | undefined) ?? undefined;
}


export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #byPeer = new Map<string, Tracked>();
  readonly #perAddress = new Map<string, number>();
  #connections = 0;
  #total = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: ConnectionLimits) {
    this.#limits = limits;
  }

  /** Connections currently open (admitted) in this process. */
  get connections(): number {
    return this.#connections;
  }

  /** Hooks into every node:http2 server of a bound grpc-js Server. */
  attach(server: Server): void {
    for (const h of http2ServersOf(server, "the connection guard")) this.#attachOne(h);
    this.#timer = setInterval(() => this.#sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Why a call on the connection of `peer` (call.getPeer()) may not be answered now, or
   * undefined. Its own connection's pending bytes are counted now; the total as of the
   * last sweep (at most SWEEP_MS old).
   */
  refusal(peer: string): string | undefined {
    const t = this.#byPeer.get(peer);
    if (t) {
      const pending = pendingOf(t);
      if (pending > this.#limits.maxPendingPerConnection) {
        return `this connection has ${pending} bytes of answers its client has not read (at most ${this.#limits.maxPendingPerConnection}): read them, or use another connection`;
      }
    }
    if (this.#total > this.#limits.maxPendingTotal) {
      return `the server holds more than ${this.#limits.maxPendingTotal} bytes of answers clients have not read: retry later`;
    }
    return undefined;
  }

  #attachOne(h: http2.Http2Server): void {
    // Run the existing listeners (node:http2's, and TLS's or grpc-js's for TLS) only for
    // admitted connections.
    const listeners = h.listeners("connection") as Array<(socket: net.Socket) => void>;
    h.removeAllListeners("connection");
    h.on("connection", (socket: net.Socket) => {
      const address = socket.remoteAddress ?? "unknown";
      const fromPeer = this.#perAddress.get(address) ?? 0;
      const { maxConnections, maxConnectionsPerPeer } = this.#limits;
      if ((maxConnections > 0 && this.#connections >= maxConnections) || (maxConnectionsPerPeer > 0 && fromPeer >= maxConnectionsPerPeer)) {
        socket.destroy();
        return;
      }
      this.#connections++;
      this.#perAddress.set(address, fromPeer + 1);
      socket.once("close", () => {
        this.#connections--;
        const n = (this.#perAddress.get(address) ?? 1) - 1;
        if (n <= 0) this.#perAddress.delete(address);
        else this.#perAddress.set(address, n);
      });
      for (const l of listeners) l.call(h, socket);
    });
    h.on("session", (session: http2.ServerHttp2Session) => {
      const socket = socketOf(session);
      const key = peerKey(socket);
      if (key === undefined) return;
      const t: Tracked = { session, streams: new Set(), lastWritten: socket?.bytesWritten ?? 0, lastProgress: Date.now() };
      this.#byPeer.set(key, t);
      session.on("stream", (stream: http2.ServerHttp2Stream) => {
        t.streams.add(stream);
        stream.on("close", () => t.streams.delete(stream)); // "close" comes once; `on` spares once()'s wrapper on every stream
      });
      session.once("close", () => {
        if (this.#byPeer.get(key) === t) this.#byPeer.delete(key);
      });
    });
  }

  #sweep(): void {
    const now = Date.now();
    let total = 0;
    for (const t of this.#byPeer.values()) {
      const pending = pendingOf(t);
      total += pending;
      const written = socketOf(t.session)?.bytesWritten ?? 0;
      if (pending === 0 || written !== t.lastWritten) {
        t.lastWritten = written;
        t.lastProgress = now;
      } else if (this.#limits.stallMs > 0 && now - t.lastProgress >= this.#limits.stallMs) {
        // The peer keeps the window shut: its answers would sit here for ever.
        t.session.destroy();
      }
    }
    this.#total = total;
  }
}

function pendingOf(t: Tracked): number {
  let n = socketOf(t.session)?.writableLength ?? 0;
  for (const s of t.streams) n += s.writableLength;
  return n;
}
