/**
 * The `grpc-timeout` request header, read exactly as grpc-js 1.14.7's server reads it
 * (server-interceptors.js, handleTimeoutHeader): the first run of 1 to 8 digits followed by
 * a unit (H M S m u n), anywhere in the value, the milliseconds truncated to a 32-bit
 * integer; anything else is refused with INTERNAL and the value in the message. The
 * routes of stream-router.ts serve deadlines with it, so a client deadline no longer
 * sends a stream to grpc-js.
 */
import type http2 from "node:http2";
import { status as Status, type StatusObject } from "@grpc/grpc-js";

const DEADLINE = /(\d{1,8})\s*([HMSmun])/;
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** What the header asks: no deadline, a timeout in ms from now, or the refusal grpc-js answers. */
export type GrpcTimeout = { readonly ms: number } | { readonly refused: Partial<StatusObject> } | undefined;

export function grpcTimeoutOf(headers: http2.IncomingHttpHeaders): GrpcTimeout {
  const raw = headers["grpc-timeout"];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  const m = DEADLINE.exec(value);
  if (m === null) return { refused: { code: Status.INTERNAL, details: `Invalid grpc-timeout value "${value}"` } };
  return { ms: (Number(m[1]) * UNIT_MS[m[2]!]!) | 0 };
}
