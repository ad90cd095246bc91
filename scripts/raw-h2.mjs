// A hand-rolled HTTP/2 client for the isolation bench (scripts/bench-isolation.mjs):
// frames no library sends on purpose (1-byte DATA frames, streams with a zero receive
// window opened one byte at a time). Plain ESM twin of test/security/raw-http2.ts, plus
// send-side flow control (the server's SETTINGS and WINDOW_UPDATEs are honoured, so the
// connection is never torn down for a FLOW_CONTROL_ERROR of ours). Header blocks are
// HPACK literals; nothing is decoded. Only ever connects to 127.0.0.1.
import net from "node:net";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
export const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8 };
const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

export function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

function hpackInt(value, prefixBits, firstByte) {
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

const hpackString = (s) => {
  const b = Buffer.from(s, "utf8");
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
};

/** "Literal header field without indexing, new name" for each [name, value]. */
export function headerBlock(headers) {
  return Buffer.concat(headers.flatMap(([k, v]) => [Buffer.from([0x00]), hpackString(k), hpackString(v)]));
}

/** The request header fields of a gRPC call to `path`, with a bearer token when given. */
export function grpcRequestHeaders(port, path, token) {
  const h = [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", `127.0.0.1:${port}`],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
  ];
  if (token) h.push(["authorization", `Bearer ${token}`]);
  return h;
}

export class RawConnection {
  /** How streams ended: "ended" (END_STREAM from the server) or "reset". */
  ends = new Map();
  closed = false;
  goaway = false;
  /** What we may still send: the connection window and each stream's. */
  connWindow = 65_535;
  #initialStreamWindow = 65_535;
  #streamWindows = new Map();
  #pending = Buffer.alloc(0);
  #sock;
  /** Called whenever sending may have become possible again (window update, drain). */
  onWritable = () => {};

  constructor(sock) {
    this.#sock = sock;
    sock.on("data", (c) => this.#onData(c));
    sock.on("drain", () => this.onWritable());
    sock.on("close", () => {
      this.closed = true;
    });
    sock.on("error", () => {});
  }

  /**
   * Connects and sends the preface. `receiveWindow` is the stream receive window this
   * client advertises (0: the server may send no DATA until WINDOW_UPDATEs); the
   * connection receive window is opened wide unless `openConnectionWindow` is false.
   */
  static open(port, { receiveWindow, openConnectionWindow = true } = {}) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host: "127.0.0.1" });
      sock.once("error", reject);
      sock.once("connect", () => {
        sock.off("error", reject);
        const c = new RawConnection(sock);
        let settings = Buffer.alloc(0);
        if (receiveWindow !== undefined) {
          settings = Buffer.alloc(6);
          settings.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
          settings.writeUInt32BE(receiveWindow, 2);
        }
        const parts = [PREFACE, frame(FRAME.SETTINGS, 0, 0, settings)];
        if (openConnectionWindow) parts.push(c.#windowUpdateFrame(0, 1 << 30));
        c.write(Buffer.concat(parts));
        resolve(c);
      });
    });
  }

  get buffered() {
    return this.#sock.writableLength;
  }

  write(buf) {
    if (!this.closed) this.#sock.write(buf);
  }

  headers(streamId, headers, endStream = false) {
    this.#streamWindows.set(streamId, this.#initialStreamWindow);
    this.write(frame(FRAME.HEADERS, END_HEADERS | (endStream ? END_STREAM : 0), streamId, headerBlock(headers)));
  }

  /** Stream send window left (what the server lets us send on it). */
  streamWindow(streamId) {
    return this.#streamWindows.get(streamId) ?? 0;
  }

  /** One DATA frame; charges the windows (the caller checks them first). */
  data(streamId, payload, endStream = false) {
    this.connWindow -= payload.length;
    this.#streamWindows.set(streamId, this.streamWindow(streamId) - payload.length);
    this.write(frame(FRAME.DATA, endStream ? END_STREAM : 0, streamId, payload));
  }

  /** `count` DATA frames of one byte each on a stream, in one socket write. */
  oneByteFrames(streamId, count) {
    const out = Buffer.alloc(10 * count, 0x61);
    for (let i = 0; i < count; i++) {
      const at = 10 * i;
      out.writeUIntBE(1, at, 3);
      out[at + 3] = FRAME.DATA;
      out[at + 4] = 0;
      out.writeUInt32BE(streamId, at + 5);
    }
    this.connWindow -= count;
    this.#streamWindows.set(streamId, this.streamWindow(streamId) - count);
    this.write(out);
  }

  windowUpdate(streamId, increment) {
    this.write(this.#windowUpdateFrame(streamId, increment));
  }

  close() {
    this.#sock.destroy();
  }

  #windowUpdateFrame(streamId, increment) {
    const p = Buffer.alloc(4);
    p.writeUInt32BE(increment);
    return frame(FRAME.WINDOW_UPDATE, 0, streamId, p);
  }

  #onData(chunk) {
    const buf = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    let at = 0;
    let writable = false;
    while (buf.length - at >= 9) {
      const len = buf.readUIntBE(at, 3);
      if (buf.length - at < 9 + len) break;
      const type = buf[at + 3];
      const flags = buf[at + 4];
      const id = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + 9, at + 9 + len);
      at += 9 + len;
      if (type === FRAME.SETTINGS && (flags & ACK) === 0) {
        for (let p = 0; p + 6 <= payload.length; p += 6) {
          if (payload.readUInt16BE(p) !== SETTINGS_INITIAL_WINDOW_SIZE) continue;
          const next = payload.readUInt32BE(p + 2);
          const delta = next - this.#initialStreamWindow;
          this.#initialStreamWindow = next;
          for (const [sid, w] of this.#streamWindows) this.#streamWindows.set(sid, w + delta);
          writable = true;
        }
        this.write(frame(FRAME.SETTINGS, ACK, 0));
      } else if (type === FRAME.PING && (flags & ACK) === 0) {
        this.write(frame(FRAME.PING, ACK, 0, payload));
      } else if (type === FRAME.GOAWAY) {
        this.goaway = true;
      } else if (type === FRAME.WINDOW_UPDATE) {
        const inc = payload.readUInt32BE(0) & 0x7fffffff;
        if (id === 0) this.connWindow += inc;
        else this.#streamWindows.set(id, this.streamWindow(id) + inc);
        writable = true;
      } else if (id !== 0 && !this.ends.has(id)) {
        if (type === FRAME.RST_STREAM) this.ends.set(id, "reset");
        else if ((type === FRAME.HEADERS || type === FRAME.DATA) && (flags & END_STREAM) !== 0) this.ends.set(id, "ended");
      }
    }
    this.#pending = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
    if (writable) this.onWritable();
  }
}
