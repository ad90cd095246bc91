/**
 * What secretd reads of grpc-js beyond its public API, in one place: the node:http2
 * servers a bound Server made (`http2Servers`, a private field) and the spelling of a
 * peer address (`call.getPeer()`). Each reader throws at start when a grpc-js upgrade
 * removes what it needs, rather than silently doing nothing.
 */
import type http2 from "node:http2";
import type net from "node:net";
import type { Server } from "@grpc/grpc-js";

/** The node:http2 servers of a bound grpc-js Server; `who` names the caller in the error. */
export function http2ServersOf(server: Server, who: string): http2.Http2Server[] {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map) || servers.size === 0) {
    throw new Error(`grpc-js no longer exposes its HTTP/2 servers (Server.http2Servers): ${who} cannot attach`);
  }
  return [...(servers.keys() as IterableIterator<http2.Http2Server>)];
}

/** A connection's peer as grpc-js's call.getPeer() spells it, or undefined. */
export function peerKey(socket: net.Socket | undefined): string | undefined {
  if (!socket?.remoteAddress) return undefined;
  return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}
