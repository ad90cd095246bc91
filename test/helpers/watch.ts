/** A WatchProjection stream for tests: messages in order, then the status it ended with. */
import { Metadata, type ClientReadableStream, type ServiceError } from "@grpc/grpc-js";
import { ProjectSecretsRequest, type Projection, type SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";

export interface WatchStream {
  readonly call: ClientReadableStream<Projection>;
  /** Every message received so far. */
  readonly received: Projection[];
  /** The next message not yet taken by next(); rejects with the stream's error once it ended. */
  next(timeoutMs?: number): Promise<Projection>;
  /** "message" once the first message came, or the code the stream ended with first. */
  outcome(timeoutMs?: number): Promise<"message" | number>;
  /** The error the stream ended with (waits for it). */
  ended(timeoutMs?: number): Promise<ServiceError>;
  cancel(): void;
}

export type WatchRequest = Parameters<typeof ProjectSecretsRequest.fromPartial>[0];

export function openWatch(client: SecretServiceClient, req: WatchRequest, token: string): WatchStream {
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  const call = client.watchProjection(ProjectSecretsRequest.fromPartial(req), md);
  const received: Projection[] = [];
  let taken = 0;
  let error: ServiceError | undefined;
  const waiters = new Set<() => void>();
  const wake = (): void => {
    for (const w of [...waiters]) w();
  };
  call.on("data", (m: Projection) => {
    received.push(m);
    wake();
  });
  call.on("error", (e: ServiceError) => {
    error = e;
    wake();
  });
  const wait = async (ready: () => boolean, timeoutMs: number, what: string): Promise<void> => {
    if (ready()) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`watch: no ${what} within ${timeoutMs} ms (received ${received.length}, error ${error?.code})`));
      }, timeoutMs);
      const check = (): void => {
        if (!ready()) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      };
      waiters.add(check);
    });
  };
  return {
    call,
    received,
    async next(timeoutMs = 10_000) {
      await wait(() => received.length > taken || error !== undefined, timeoutMs, "message");
      if (received.length > taken) return received[taken++]!;
      throw error!;
    },
    async ended(timeoutMs = 10_000) {
      await wait(() => error !== undefined, timeoutMs, "end");
      return error!;
    },
    async outcome(timeoutMs = 10_000) {
      await wait(() => received.length > 0 || error !== undefined, timeoutMs, "message or end");
      return received.length > 0 ? "message" : error!.code;
    },
    cancel: () => call.cancel(),
  };
}
