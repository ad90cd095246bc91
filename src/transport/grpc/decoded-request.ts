/**
 * Request decoding with our own errors. grpc-js answers INTERNAL when a deserializer
 * throws and gives the handler no say; so each method's deserializer is wrapped: it runs
 * the wire check (request-check.ts) and the generated decoder, and on failure hands the
 * handler a RefusedRequest instead of a message. `unary` (call.ts) and WatchProjection
 * throw its error after authentication, so an unauthenticated caller learns nothing
 * about it.
 */
import type { ServiceDefinition } from "@grpc/grpc-js";
import { invalid, type SecretdError } from "../../domain/errors.js";
import { requestDescriptor, requestProblem } from "./request-check.js";

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
        const problem = requestProblem(desc, bytes);
        if (problem === undefined) {
          try {
            return decode(bytes);
          } catch {
            return new RefusedRequest(invalid("request", `is not a valid ${desc.name} encoding`));
          }
        }
        return new RefusedRequest(problem);
      },
    };
  }
  return out as S;
}

/** The decoded request, or the refusal its deserializer recorded. */
export function decodedRequest<Req>(req: Req | RefusedRequest): Req {
  if (req instanceof RefusedRequest) throw req.error;
  return req;
}
