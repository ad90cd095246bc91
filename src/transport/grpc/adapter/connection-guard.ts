/**
 * Per-connection limits grpc-js has no option for (#16 item 5): how many HTTP/2
 * connections are open (in all, and per peer address); and the feed of the resource
 * ledger (resource-ledger.ts): every session grpc-js accepts is a ledger connection, and
 * the ledger is swept a few times a second (unread answers refreshed, slow connections
 * closed, request bodies past their deadline reset). The stream router hands the ledger
 * each stream.
 *
 * grpc-js creates its node:http2 servers itself and exposes neither them nor their
 * sessions, so the guard reads them after bindAsync (grpc-internals.ts). It wraps the
 * servers' "connection" listeners, so a connection past a cap is closed before HTTP/2
 * (or TLS) ever starts on it. Everything is per server process: with --workers N each
 * worker applies the limits to the connections it holds.
 */
import type http2 from "node:http2";
import type net from "node:net";
import type { Server } from "@grpc/grpc-js";
import { http2ServersOf } from "./grpc-internals.js";
import type { ResourceLedger } from "../resource-ledger.js";

export interface ConnectionLimits {
  /** Open connections of this process; 0 = no cap. */
  readonly maxConnections: number;
  /** Open connections from one peer IP address; 0 = no cap. */
  readonly maxConnectionsPerPeer: number;
}

const SWEEP_MS = 100;

export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #ledger: ResourceLedger;
  readonly #perAddress = new Map<string, number>();
  #connections = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(limits: ConnectionLimits, ledger: ResourceLedger) {
    this.#limits = limits;
    this.#ledger = ledger;
  }

  /** Connections currently open (admitted) in this process. */
  get connections(): number {
    return this.#connections;
  }

  /** Hooks into every node:http2 server of a bound grpc-js Server. */
  attach(server: Server): void {
    for (const h of http2ServersOf(server, "the connection guard")) this.#attachOne(h);
    this.#timer = setInterval(() => this.#ledger.sweep(), SWEEP_MS);
    this.#timer.unref();
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
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
      const socket = session.socket as net.Socket | undefined;
      if (!socket) return;
      // session.socket is a proxy that throws once the session let go of its socket
      // (destroyed, before its "close"): read it only while the session stands.
      const view = {
        get bytesWritten(): number {
          return session.destroyed ? 0 : socket.bytesWritten;
        },
        get writableLength(): number {
          return session.destroyed ? 0 : socket.writableLength;
        },
      };
      this.#ledger.connect(session, view, socket.remoteAddress ?? "unknown", () => session.destroy());
      session.once("close", () => this.#ledger.disconnect(session));
    });
  }
}
