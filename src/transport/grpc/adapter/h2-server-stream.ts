/**
 * A server-streaming gRPC call on a bare node:http2 stream (stream-router.ts routes it
 * here): reads the one request message, then hands the handler a call with the part of
 * grpc-js's ServerWritableStream that secretd's handlers use (`metadata`, `request`,
 * `getPeer`, `write`, `on("cancelled")`, `emit("error", status)`), framed and ended as
 * grpc-js would: trailers-only when the call fails before its first message,
 * `grpc-message` percent-encoded, the same limits, and the same status codes for a
 * missing, second, compressed or oversized request message.
 *
 * The body is read into one buffer sized from the message's length prefix (refused past
 * the receive limit before anything is allocated), not kept as a list of chunks: 1-byte
 * DATA frames cost 1 byte each. The resource ledger charges it meanwhile (stream-router.ts).
 *
 * A client deadline (`grpc-timeout`, grpc-timeout.ts) is served as grpc-js serves it: from
 * the headers' arrival, the call ends DEADLINE_EXCEEDED ("Deadline exceeded") when it runs
 * out, and the handler is told the call was cancelled; a malformed value is answered
 * INTERNAL before the request is read. One timer a stream, cleared when the stream closes.
 */
import type http2 from "node:http2";
import type net from "node:net";
import { Metadata, status as Status, type StatusObject } from "@grpc/grpc-js";
import { peerKey } from "./grpc-internals.js";
import { grpcTimeoutOf } from "./grpc-timeout.js";
import type { StreamRoute } from "./stream-router.js";

export interface StreamMethod<Req, Res> {
  readonly path: string;
  readonly requestDeserialize: (bytes: Buffer) => Req;
  readonly responseSerialize: (message: Res) => Buffer;
}

export interface StreamLimits {
  /** The largest request message accepted (grpc.max_receive_message_length). */
  readonly maxReceive: number;
  /** The largest response message sent (grpc.max_send_message_length). */
  readonly maxSend: number;
}

/** The part of grpc-js's ServerWritableStream a secretd stream handler uses. */
export interface ServerStreamCall<Req, Res> {
  /** Read it while the handler runs: afterwards this transport's call holds none (it carries the bearer token). */
  readonly metadata: Metadata;
  readonly request: Req;
  getPeer(): string;
  write(message: Res, flushed?: () => void): boolean;
  on(event: "cancelled", listener: () => void): unknown;
  emit(event: "error", status: Partial<StatusObject>): boolean;
}

/**
 * What gRPC requires and no more: node:http2 keeps each stream's response headers for the
 * stream's life, and two more (grpc-encoding: identity, which is the default, and
 * grpc-accept-encoding, moot once the one request has arrived) cost ~190 bytes a watch.
 */
const RESPONSE_HEADERS = { ":status": 200, "content-type": "application/grpc+proto" };
/** Request headers grpc-js keeps out of a call's metadata. */
const TRANSPORT_HEADERS = ["grpc-timeout", "grpc-encoding", "grpc-accept-encoding", "accept-encoding", "te", "content-type"];

/** Reading the request; handed to the handler, nothing sent yet; response headers sent; ended. */
const READING = 0;
const FRESH = 1;
const OPEN = 2;
const ENDED = 3;

/** What `metadata` is outside the handler (never written to). */
const NO_METADATA = new Metadata();

function trailersOf(s: Partial<StatusObject>): http2.OutgoingHttpHeaders {
  return { "grpc-status": String(s.code ?? Status.UNKNOWN), "grpc-message": encodeURI(s.details ?? ""), ...s.metadata?.toHttp2Headers() };
}

/** What one route shares among its streams. */
interface Route<Req, Res> {
  readonly method: StreamMethod<Req, Res>;
  readonly limits: StreamLimits;
  readonly handler: (call: ServerStreamCall<Req, Res>) => void;
}

// A watch holds its stream for hours, so each stream costs as little as it can: the
// listeners are shared functions (the call is found by its stream), the request headers
// and body are dropped once read, and the metadata (bearer token included) once the
// handler has run.
const calls = new WeakMap<http2.ServerHttp2Stream, H2ServerStream<unknown, unknown>>();

function onData(this: http2.ServerHttp2Stream, chunk: Buffer): void {
  calls.get(this)?.received(chunk);
}

function onEnd(this: http2.ServerHttp2Stream): void {
  calls.get(this)?.halfClosed();
}

/** The router calls it from its one "close" listener (stream-router.ts). */
function streamClosed(stream: http2.ServerHttp2Stream): void {
  calls.get(stream)?.closed();
}

function onDeadline(call: { expired(): void }): void {
  call.expired();
}

class H2ServerStream<Req, Res> implements ServerStreamCall<Req, Res> {
  /** The request's metadata while the handler runs; empty afterwards. */
  metadata: Metadata = NO_METADATA;
  request!: Req;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #route: Route<Req, Res>;
  #headers: http2.IncomingHttpHeaders | undefined;
  /** Bytes of the body read so far: the 5-byte prefix, then the message. */
  #size = 0;
  /** The prefix's flag and length, parsed byte by byte. */
  #flag = 0;
  #length = 0;
  /** The message, allocated once its length is known. */
  #message: Buffer | undefined;
  #state = READING;
  #onCancelled: (() => void) | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, route: Route<Req, Res>) {
    this.#stream = stream;
    this.#headers = headers;
    this.#route = route;
  }

  /** The stream the call runs on (for the resource ledger). */
  get http2Stream(): http2.ServerHttp2Stream {
    return this.#stream;
  }

  received(chunk: Buffer): void {
    if (this.#state !== READING || this.#stream.destroyed) return;
    const { method, limits } = this.#route;
    let at = 0;
    // The prefix: flag, then a 4-byte length; checked as soon as it is whole.
    while (this.#size < 5 && at < chunk.length) {
      const b = chunk[at++]!;
      if (this.#size === 0) this.#flag = b;
      else this.#length = this.#length * 256 + b;
      this.#size++;
      if (this.#size === 5) {
        const refused = prefixRefusal(this.#flag, this.#length, limits.maxReceive);
        if (refused !== undefined) {
          this.#end(refused);
          return;
        }
        this.#message = Buffer.allocUnsafe(this.#length);
      }
    }
    if (at === chunk.length) return;
    const message = this.#message!;
    const filled = this.#size - 5;
    if (chunk.length - at > message.length - filled) {
      this.#end({ code: Status.UNIMPLEMENTED, details: `Received a second request message for server streaming method ${method.path}` });
      return;
    }
    chunk.copy(message, filled, at);
    this.#size += chunk.length - at;
  }

  halfClosed(): void {
    const headers = this.#headers;
    const message = this.#message;
    const size = this.#size;
    this.#message = undefined;
    this.#headers = undefined;
    this.#stream.off("data", onData);
    this.#stream.off("end", onEnd);
    if (this.#state !== READING || headers === undefined) return;
    const { method, handler } = this.#route;
    if (size === 0) {
      this.#end({ code: Status.UNIMPLEMENTED, details: `Received no request message for server streaming method ${method.path}` });
      return;
    }
    if (message === undefined || size < 5 + message.length) {
      this.#end({ code: Status.INTERNAL, details: "Received an incomplete message frame" });
      return;
    }
    const got = message;
    try {
      this.request = method.requestDeserialize(got);
    } catch {
      this.#end({ code: Status.INTERNAL, details: "Error deserializing request" });
      return;
    }
    const metadata = Metadata.fromHttp2Headers(headers);
    for (const h of TRANSPORT_HEADERS) metadata.remove(h);
    this.metadata = metadata;
    this.#state = FRESH;
    try {
      handler(this);
    } catch {
      this.#end({ code: Status.UNKNOWN, details: "Unknown error" }); // as grpc-js answers a handler that throws
    } finally {
      this.metadata = NO_METADATA;
    }
  }

  /** Ends the call DEADLINE_EXCEEDED after `ms` (as grpc-js: a negative or zero timeout ends it at once). */
  expireIn(ms: number): void {
    this.#deadline = setTimeout(onDeadline, ms, this);
  }

  /** The client's deadline passed: the status goes out, and a running handler learns the call is cancelled. */
  expired(): void {
    this.#deadline = undefined;
    const running = this.#state === FRESH || this.#state === OPEN ? this.#onCancelled : undefined;
    this.#end({ code: Status.DEADLINE_EXCEEDED, details: "Deadline exceeded" });
    running?.();
  }

  /** The stream closed (client reset, connection lost, shutdown) before the call ended. */
  closed(): void {
    const was = this.#state;
    this.#state = ENDED;
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
    calls.delete(this.#stream);
    if (was === FRESH || was === OPEN) this.#onCancelled?.();
    this.#onCancelled = undefined;
  }

  getPeer(): string {
    return peerKey(this.#stream.session?.socket as net.Socket | undefined) ?? "unknown";
  }

  on(_event: "cancelled", listener: () => void): this {
    this.#onCancelled = listener;
    return this;
  }

  write(message: Res, flushed?: () => void): boolean {
    if (this.#state !== FRESH && this.#state !== OPEN) return false;
    let body: Buffer;
    try {
      body = this.#route.method.responseSerialize(message);
    } catch {
      this.#end({ code: Status.INTERNAL, details: "Error serializing response" });
      return false;
    }
    const max = this.#route.limits.maxSend;
    if (body.length > max) {
      this.#end({ code: Status.RESOURCE_EXHAUSTED, details: `Sent message larger than max (${body.length} vs. ${max})` });
      return false;
    }
    if (this.#state === FRESH) {
      this.#stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
      this.#state = OPEN;
    }
    const frame = Buffer.allocUnsafe(5 + body.length);
    frame[0] = 0;
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    return this.#stream.write(frame, flushed);
  }

  emit(_event: "error", status: Partial<StatusObject>): boolean {
    this.#end(status);
    return true;
  }

  #end(status: Partial<StatusObject>): void {
    if (this.#state === ENDED) return;
    const headersSent = this.#state === OPEN;
    this.#state = ENDED;
    this.#message = undefined;
    this.#onCancelled = undefined;
    clearTimeout(this.#deadline);
    this.#deadline = undefined;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    const trailers = trailersOf(status);
    if (headersSent) {
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end();
    } else stream.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
  }
}

/** Why a message with this prefix is refused (as grpc-js words it), or undefined. */
function prefixRefusal(flag: number, length: number, maxReceive: number): Partial<StatusObject> | undefined {
  if (flag === 1) return { code: Status.INTERNAL, details: "Received a compressed message but no grpc-encoding" };
  if (flag !== 0) return { code: Status.INTERNAL, details: `Received a message with an invalid flag ${flag}` };
  if (length > maxReceive) return { code: Status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${length} vs. ${maxReceive})` };
  return undefined;
}

/** A route serving `method` with `handler` once the request is complete (half-closed). */
export function serverStreamRoute<Req, Res>(
  method: StreamMethod<Req, Res>,
  limits: StreamLimits,
  handler: (call: ServerStreamCall<Req, Res>) => void,
): StreamRoute {
  const route: Route<Req, Res> = { method, limits, handler };
  const open = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void => {
    const call = new H2ServerStream(stream, headers, route) as H2ServerStream<unknown, unknown>;
    calls.set(stream, call);
    stream.on("data", onData);
    stream.on("end", onEnd);
    const timeout = grpcTimeoutOf(headers);
    if (timeout === undefined) return;
    if ("refused" in timeout) call.emit("error", timeout.refused);
    else call.expireIn(timeout.ms);
  };
  return { open, closed: streamClosed };
}
