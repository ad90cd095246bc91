/**
 * Request decoding with our own errors. grpc-js answers INTERNAL when a deserializer
 * throws and gives the handler no say; so each method's deserializer is wrapped: it runs
 * the wire check (request-check.ts) and the generated decoder, and on failure hands the
 * handler a RefusedRequest instead of a message. `unary` (call.ts) and WatchProjection
 * throw its error after authentication, so an unauthenticated caller learns nothing
 * about it.
 */
import type { ServiceDefinition } from "@grpc/grpc-js";
import { invalid, type SecretdError } from "../../errors.js";
import { checkRequest, requestDescriptor, type TimestampAt } from "./request-check.js";

export class RefusedRequest {
  constructor(readonly error: SecretdError) {}
}

/** A copy of `def` whose request deserializers never throw. */
export function checkedService<S extends ServiceDefinition>(def: S): S {
  const out: Record<string, unknown> = {};
  for (const [key, method] of Object.entries(def)) {
    const desc = requestDescriptor(method.path);
    const decode = method.requestDeserialize;
    if (desc === undefined) {
      out[key] = method;
      continue;
    }
    out[key] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        const checked = checkRequest(desc, bytes);
        if (checked.problem !== undefined) return new RefusedRequest(checked.problem);
        try {
          return withExactTimestamps(decode(bytes), checked.timestamps);
        } catch {
          return new RefusedRequest(invalid("request", `is not a valid ${desc.name} encoding`));
        }
      },
    };
  }
  return out as S;
}

/** Puts the truncated Date of each Timestamp where ts-proto put its rounded one (timestamps.ts). */
function withExactTimestamps(msg: unknown, timestamps: readonly TimestampAt[]): unknown {
  for (const t of timestamps) {
    let obj = msg as Record<string, unknown>;
    for (const key of t.path.slice(0, -1)) obj = obj[key] as Record<string, unknown>;
    obj[t.path[t.path.length - 1]!] = new Date(t.ms);
  }
  return msg;
}

/** The decoded request, or the refusal its deserializer recorded. */
export function decodedRequest<Req>(req: Req | RefusedRequest): Req {
  if (req instanceof RefusedRequest) throw req.error;
  return req;
}
