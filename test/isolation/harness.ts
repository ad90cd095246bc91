/**
 * What the noisy-neighbor tests share: the server's resident memory (it runs in this
 * process, so /proc/<this pid>/status), waiting on a condition, and a node:http2 client
 * stream whose outcome (grpc-status, or the RST_STREAM code) is recorded as it comes.
 */
import { readFileSync } from "node:fs";
import http2 from "node:http2";

export const S = "/secrets.v1.SecretService";
export const MiB = 1024 * 1024;

/** VmRSS of the server's process, in bytes (after a GC when exposed). */
export function vmRss(): number {
  global.gc?.();
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${process.pid}/status`, "utf8"));
  if (!m) throw new Error("no VmRSS in /proc/<pid>/status");
  return Number(m[1]) * 1024;
}

export async function until(check: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`not met in time: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** How a client stream ended: its grpc-status (headers or trailers), or the server's RST_STREAM code. */
export interface Outcome {
  status?: string;
  rstCode?: number;
  closed: boolean;
}

/** A gRPC request on `session`; `body` is written (never ended when `end` is false). Nothing is read when `read` is false. */
export function h2Request(session: http2.ClientHttp2Session, path: string, body: Buffer, opts: { token?: string; end?: boolean; read?: boolean } = {}): { stream: http2.ClientHttp2Stream; outcome: Outcome } {
  const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const stream = session.request(headers);
  const outcome: Outcome = { closed: false };
  const take = (h: http2.IncomingHttpHeaders): void => {
    if (h["grpc-status"] !== undefined) outcome.status = String(h["grpc-status"]);
  };
  stream.on("response", take);
  stream.on("trailers", take);
  stream.on("error", () => undefined);
  stream.on("close", () => {
    outcome.closed = true;
    if (outcome.status === undefined) outcome.rstCode = stream.rstCode;
  });
  if (opts.read === false) stream.pause();
  else stream.resume();
  if (opts.end === false) stream.write(body);
  else stream.end(body);
  return { stream, outcome };
}

/** A connection to `address`; `localAddress` (127.0.0.2, ...) makes it another peer. */
export function connect(address: string, opts: { zeroWindow?: boolean; localAddress?: string } = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://${address}`, {
    ...(opts.zeroWindow ? { settings: { initialWindowSize: 0 } } : {}),
    ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
  });
  session.on("error", () => undefined);
  return session;
}
