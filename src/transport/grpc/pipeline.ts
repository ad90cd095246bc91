/**
 * The one call pipeline, shared by unary calls and streams (nice-grpc's server middleware
 * is the model): a call runs through a list of steps, each `(call, next) => ...`, that runs
 * the rest of the list by calling `next`. A step may hook three moments of a call:
 * `open` (before the handler: request id, authentication, ...), `answer` (before each
 * message leaves: ledger admission, audit) and `end` (once, with the call's status: log
 * line, metrics). A step refuses by throwing a SecretdError; status.ts makes the status.
 */
import type { Metadata, status as Status } from "@grpc/grpc-js";
import type { Principal } from "../../domain/principal.js";

/** What a handler is given about its call. */
export interface CallContext {
  readonly principal: Principal;
  readonly requestId: string;
  /** Aborted when the call is cancelled: by the client, its deadline or a lost connection. */
  readonly signal: AbortSignal;
}

/** What one audit event of a call is about; a call about several secrets gives several. */
export interface AuditTarget {
  readonly mesh: string;
  readonly name: string;
  readonly version: number;
  readonly keys: readonly string[];
  /** The stage `version` holds ("current", "previous", "pending"); absent or "" when none is named. */
  readonly stage?: string;
}

/** The parts of a transport's call (grpc-js unary or stream, or the node:http2 route) a pipeline call is made from. */
export interface IncomingCall {
  readonly metadata: Metadata;
  readonly request: unknown;
  getPeer(): string;
}

/** How a call ended. */
export interface Outcome {
  readonly code: Status;
  /** The cause of a failure (logged for INTERNAL, never sent). */
  readonly err?: unknown;
}

/**
 * One call as the steps see it. A class, not closures: a watch lives for hours and there may
 * be tens of thousands, so each holds its few fields and makes its AbortSignal only when asked.
 */
export class PipelineCall {
  requestId = "";
  principal: Principal | undefined = undefined;
  readonly started = performance.now();
  /** Read at the start: a connection's address may be gone by the time the call ends. */
  readonly peer: string;
  /** Set once the call's events are recorded (the audit step). */
  audited = false;
  #cancelled = false;
  #abort: AbortController | undefined;

  constructor(
    readonly method: string,
    /** The transport's call: its metadata is read only while the `open` steps start. */
    readonly transport: IncomingCall,
    /**
     * The call's audit targets from its request and response (undefined when it failed); no
     * audit when absent. A method's one function, not a closure a call: a watch keeps it for hours.
     */
    readonly auditOf: ((req: unknown, res: unknown) => readonly AuditTarget[]) | undefined,
  ) {
    this.peer = transport.getPeer();
  }

  get request(): unknown {
    return this.transport.request;
  }

  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      this.#abort = new AbortController();
      if (this.#cancelled) this.#abort.abort();
    }
    return this.#abort.signal;
  }

  /** The call was cancelled (client, deadline, connection): its signal aborts. */
  cancel(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.#abort?.abort();
  }

  /** The context a handler is given (after the `open` steps: authenticated). */
  context(): CallContext {
    const signalOf = (): AbortSignal => this.signal;
    return {
      principal: this.principal!,
      requestId: this.requestId,
      get signal() {
        return signalOf();
      },
    };
  }
}

export interface Step {
  open?(call: PipelineCall, next: () => Promise<void>): Promise<void>;
  answer?(call: PipelineCall, message: unknown, next: () => void): void;
  end?(call: PipelineCall, outcome: Outcome, next: () => void): void;
}

/** A list of steps composed: each moment runs its steps in list order, then `last`. */
export interface Pipeline {
  open(call: PipelineCall, last: () => Promise<void>): Promise<void>;
  answer(call: PipelineCall, message: unknown, last: () => void): void;
  end(call: PipelineCall, outcome: Outcome): void;
}

export function compose(steps: readonly Step[]): Pipeline {
  const opens = steps.flatMap((s) => (s.open ? [s.open.bind(s)] : []));
  const answers = steps.flatMap((s) => (s.answer ? [s.answer.bind(s)] : []));
  const ends = steps.flatMap((s) => (s.end ? [s.end.bind(s)] : []));
  return {
    open(call, last) {
      const run = (i: number): Promise<void> => (i === opens.length ? last() : opens[i]!(call, () => run(i + 1)));
      return run(0);
    },
    answer(call, message, last) {
      const run = (i: number): void => (i === answers.length ? last() : answers[i]!(call, message, () => run(i + 1)));
      run(0);
    },
    end(call, outcome) {
      const run = (i: number): void => {
        if (i < ends.length) ends[i]!(call, outcome, () => run(i + 1));
      };
      run(0);
    },
  };
}
