/**
 * One open WatchProjection: who asked, for what, what the client holds, and where its
 * next message stands. Coalescing lives in these flags: a change only marks the watch
 * dirty; one evaluation reads the latest state; while a message is still with the
 * transport, further changes just keep it dirty, so a slow reader costs one pending
 * evaluation, never a queue of messages.
 */
import { randomUUID } from "node:crypto";
import type { SecretdError } from "../errors.js";
import type { Principal } from "../domain/principal.js";
import type { ProjectSecretsRequest, Projection } from "../gen/secrets/v1/secrets.js";

/** The transport side of a watch (grpc-js in src/transport; anything in tests). */
export interface WatchSink {
  /** Hands one message over; `flushed` runs once the transport has taken it. */
  send(message: Projection, flushed: () => void): void;
  /** Ends the stream with this error. Called at most once. */
  end(err: SecretdError | unknown): void;
}

export function watchKey(tenant: string, mesh: string, name: string): string {
  return `${tenant}\0${mesh}\0${name}`;
}

export class Watch {
  readonly id = randomUUID();
  readonly since: number;
  /** Index keys: one per distinct item name (missing optional ones included: they may appear). */
  readonly keys: readonly string[];
  /** The revision the client holds: known_revision until the first message. */
  revision: string;
  /** Secrets this watch holds leases on (an array: a Set's table costs ~200 bytes a watch). */
  uids: readonly string[] = [];
  dirty = false;
  /** Its first evaluation is done (a known_revision it matched counts as applied once). */
  evaluated = false;
  queued = false;
  running = false;
  /** A message is with the transport and not yet taken. */
  inFlight = false;
  ended = false;
  deadlineTimer: NodeJS.Timeout | undefined;
  tokenTimer: NodeJS.Timeout | undefined;

  /** What is re-projected on each change: the request's mesh and items (known_revision lives in `revision`). */
  readonly request: ProjectSecretsRequest;

  constructor(
    readonly principal: Principal,
    request: ProjectSecretsRequest,
    readonly sink: WatchSink,
    now: number,
    /** Its watchStateBytes, charged to its tenant while it is open. */
    readonly bytes = 0,
    /** The hub's one function that forgets a watch (the handle's close: no closure a watch). */
    private readonly forget: (w: Watch) => void = () => undefined,
  ) {
    this.since = now;
    this.revision = request.knownRevision;
    this.request = { mesh: request.mesh, items: request.items, knownRevision: "" };
    this.keys = [...new Set(request.items.map((i) => watchKey(principal.tenant, request.mesh, i.name)))];
  }

  /** The client went away (WatchHandle): the hub forgets the watch and its leases. */
  close(): void {
    this.forget(this);
  }

  clearTimers(): void {
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.tokenTimer);
    this.deadlineTimer = undefined;
    this.tokenTimer = undefined;
  }
}
