/**
 * A hand-rolled HTTP/2 client for requests no library will send: duplicate header
 * fields (node:http2 and grpc-js both refuse two `authorization` values), more streams
 * than the server allows (node:http2 queues them), half-sent prefaces and the like.
 * Header blocks are HPACK literals (no Huffman, no indexing) and nothing is decoded:
 * callers learn outcomes from frame types, or from the server's log line found by the
 * `x-request-id` they sent. Only ever connects to 127.0.0.1.
 */
import net from "node:net";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const H2_ERROR = { NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, REFUSED_STREAM: 0x7, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb } as const;

export interface Frame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, firstByte: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const out = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(s: string): Buffer {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
}

/** "Literal header field without indexing, new name" for every field, in order. */
export function headerBlock(headers: ReadonlyArray<readonly [string, string]>): Buffer {
  return Buffer.concat(headers.flatMap(([k, v]) => [Buffer.from([0x00]), hpackString(k), hpackString(v)]));
}

/** The request header fields of a gRPC call, plus `extra` (duplicates kept). */
export function grpcHeaders(authority: string, path: string, extra: ReadonlyArray<readonly [string, string]> = []): Array<readonly [string, string]> {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", authority],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ];
}

/** A gRPC length-prefixed message, uncompressed. */
export function grpcFrame(message: Uint8Array): Buffer {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(message.length, 1);
  return Buffer.concat([h, message]);
}

export function parseFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let at = 0;
  while (buf.length - at >= 9) {
    const len = buf.readUIntBE(at, 3);
    if (buf.length - at < 9 + len) break;
    frames.push({ type: buf[at + 3]!, flags: buf[at + 4]!, streamId: buf.readUInt32BE(at + 5) & 0x7fffffff, payload: buf.subarray(at + 9, at + 9 + len) });
    at += 9 + len;
  }
  return { frames, rest: buf.subarray(at) };
}

export type StreamEnd = { readonly kind: "ended" } | { readonly kind: "reset"; readonly code: number };

/**
 * One HTTP/2 connection driven frame by frame. SETTINGS and PING are acknowledged;
 * the connection-level receive window is opened wide so responses never stall.
 */
export class RawConnection {
  /** How each stream ended: END_STREAM from the server, or RST_STREAM with a code. */
  readonly ends = new Map<number, StreamEnd>();
  goawayCode: number | undefined;
  closed = false;
  /** Answer SETTINGS and PING; turn off while writing a frame byte by byte. */
  autoAck = true;
  readonly #sock: net.Socket;
  #pending: Buffer = Buffer.alloc(0);
  #waiters: Array<() => void> = [];

  private constructor(sock: net.Socket) {
    this.#sock = sock;
    sock.on("data", (chunk: Buffer) => this.#onData(chunk));
    sock.on("close", () => {
      this.closed = true;
      this.#wake();
    });
    sock.on("error", () => undefined); // "close" follows
  }

  /**
   * Connects and (unless `preface` is false) sends the client preface, an empty
   * SETTINGS and a connection WINDOW_UPDATE.
   */
  static open(port: number, opts: { preface?: boolean; localAddress?: string } = {}): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      // localAddress: another loopback source address (127.0.0.2, ...), to be another peer.
      const sock = net.connect({ port, host: "127.0.0.1", ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      sock.once("error", reject);
      sock.once("connect", () => {
        sock.off("error", reject);
        const c = new RawConnection(sock);
        if (opts.preface === false) {
          resolve(c);
          return;
        }
        const increment = Buffer.alloc(4);
        increment.writeUInt32BE(1 << 30);
        c.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0), frame(FRAME.WINDOW_UPDATE, 0, 0, increment)]));
        resolve(c);
      });
    });
  }

  write(buf: Buffer): void {
    if (!this.closed) this.#sock.write(buf);
  }

  headers(streamId: number, headers: ReadonlyArray<readonly [string, string]>, endStream = false): void {
    this.write(frame(FRAME.HEADERS, FLAG.END_HEADERS | (endStream ? FLAG.END_STREAM : 0), streamId, headerBlock(headers)));
  }

  /** A header block split into HEADERS + CONTINUATION frames of at most 16 KiB (the default max frame size). */
  headersContinued(streamId: number, headers: ReadonlyArray<readonly [string, string]>): void {
    const block = headerBlock(headers);
    const chunk = 16 * 1024;
    for (let at = 0; at < block.length; at += chunk) {
      const last = at + chunk >= block.length;
      const type = at === 0 ? FRAME.HEADERS : FRAME.CONTINUATION;
      this.write(frame(type, last ? FLAG.END_HEADERS : 0, streamId, block.subarray(at, at + chunk)));
    }
  }

  data(streamId: number, payload: Buffer, endStream: boolean): void {
    this.write(frame(FRAME.DATA, endStream ? FLAG.END_STREAM : 0, streamId, payload));
  }

  reset(streamId: number, code: number): void {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(code);
    this.write(frame(FRAME.RST_STREAM, 0, streamId, p));
  }

  /** Resolves once `done()` holds, re-checked after every frame received and on close. */
  until(done: () => boolean): Promise<void> {
    if (done() || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (done() || this.closed) resolve();
        else this.#waiters.push(check);
      };
      this.#waiters.push(check);
    });
  }

  close(): void {
    this.#sock.destroy();
  }

  #wake(): void {
    const ws = this.#waiters;
    this.#waiters = [];
    for (const w of ws) w();
  }

  #onData(chunk: Buffer): void {
    const { frames, rest } = parseFrames(Buffer.concat([this.#pending, chunk]));
    this.#pending = rest;
    for (const f of frames) {
      if (f.type === FRAME.SETTINGS && (f.flags & FLAG.ACK) === 0) {
        if (this.autoAck) this.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      } else if (f.type === FRAME.PING && (f.flags & FLAG.ACK) === 0) {
        if (this.autoAck) this.write(frame(FRAME.PING, FLAG.ACK, 0, f.payload));
      } else if (f.type === FRAME.GOAWAY) this.goawayCode = f.payload.readUInt32BE(4);
      else if (f.streamId !== 0 && !this.ends.has(f.streamId)) {
        if (f.type === FRAME.RST_STREAM) this.ends.set(f.streamId, { kind: "reset", code: f.payload.readUInt32BE(0) });
        else if ((f.type === FRAME.HEADERS || f.type === FRAME.DATA) && (f.flags & FLAG.END_STREAM) !== 0) this.ends.set(f.streamId, { kind: "ended" });
      }
    }
    this.#wake();
  }
}

/**
 * One request on a fresh connection: the header fields exactly as given (duplicates
 * included) and `body` as its only DATA frame. Resolves how stream 1 ended, or
 * "closed" when the connection went away first.
 */
export async function rawRequest(port: number, headers: ReadonlyArray<readonly [string, string]>, body: Buffer): Promise<StreamEnd | { readonly kind: "closed" }> {
  const c = await RawConnection.open(port);
  try {
    c.headers(1, headers);
    c.data(1, body, true);
    await c.until(() => c.ends.has(1));
    return c.ends.get(1) ?? { kind: "closed" };
  } finally {
    c.close();
  }
}
