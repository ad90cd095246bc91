/**
 * One WatchProjection stream kept alive: reconnects with jittered backoff, sends the
 * last revision it handled as `known_revision` (so a resync of an unchanged projection
 * sends, and writes, nothing), reconnects at once when the token file changes, and
 * hands each new projection to `onProjection` one at a time, latest first: projections
 * that arrive while one is being handled collapse into the newest.
 *
 * Every attempt after the first dials on a fresh channel (`reopen`), so the server is
 * reached at the attempt our backoff chose, not when grpc-js's own backoff of an old
 * channel ends (channel-options.ts). "watching again" is logged once the watch is back
 * after an interruption: at its first message, or, after a lost connection, when the
 * new channel is connected (an unchanged projection sends nothing).
 *
 * How a stream's end is read (SPEC §4, §8):
 * - PERMISSION_DENIED / NOT_FOUND: access is gone → `onAccessGone`, then keep retrying;
 * - INVALID_ARGUMENT before any projection arrived: the request itself is refused
 *   (its projection file) → `onFatal`; after one did, the same request was good, so the
 *   secrets' content changed under it (e.g. a key someone added): keep the last good
 *   values and retry;
 * - UNIMPLEMENTED: retrying cannot help → `onFatal`;
 * - anything else (UNAVAILABLE, UNAUTHENTICATED, a dropped connection…): retry.
 */
import { connectivityState, Metadata, status, type ClientReadableStream, type ServiceError, type StatusObject } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { SecretdError } from "../errors.js";
import { ProjectSecretsRequest, type Projection, type SecretServiceClient } from "../gen/secrets/v1/secrets.js";
import type { Backoff } from "./backoff.js";
import type { TokenSource } from "./token-source.js";

/** A stream that stayed up this long was healthy: the next failure starts the backoff over. */
const HEALTHY_MS = 10_000;

export interface WatchLoopDeps {
  /** The client of the first attempt. */
  readonly client: SecretServiceClient;
  /** Closes the last channel and opens a fresh one, for each later attempt; without it, `client` is kept. */
  readonly reopen?: () => SecretServiceClient;
  readonly request: ProjectSecretsRequest;
  readonly token: TokenSource;
  readonly backoff: Backoff;
  readonly log: Logger;
  /** The revision already in hand (a snapshot taken before the watch): not sent again. */
  readonly knownRevision?: string;
  onProjection(p: Projection): Promise<void> | void;
  onAccessGone(code: string, details: string): Promise<void> | void;
  onFatal(err: unknown): void;
}

/** Ends that the server answered over a live connection: only a message says the watch is back. */
const ANSWERS: ReadonlySet<string> = new Set(["UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION"]);

export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`;
}

export class WatchLoop {
  private call: ClientReadableStream<Projection> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private knownRevision = "";
  private pending: Projection | undefined;
  private busy = false;
  private unwatchToken: () => void = () => undefined;
  /** The token of the current (or last) stream, to tell a rotated file from a touched one. */
  private tokenInUse: string | undefined;
  private client: SecretServiceClient;
  private attempts = 0;
  /** A projection was accepted for this request: a later INVALID_ARGUMENT is about content, not the request. */
  private accepted: boolean;
  /** A set was written (or was on disk at start): a later unwritable projection keeps it. */
  private written: boolean;
  /** Why the watch is interrupted (the code it ended with), until it is back: then "watching again". */
  private interrupted: string | undefined;

  constructor(private readonly deps: WatchLoopDeps) {
    this.knownRevision = deps.knownRevision ?? "";
    this.accepted = this.knownRevision !== "";
    this.written = this.accepted;
    this.client = deps.client;
  }

  start(): void {
    this.unwatchToken = this.deps.token.watch(() => {
      let now: string;
      try {
        now = this.deps.token.read();
      } catch {
        return; // mid-rotation (missing or empty for a moment): the next poll or connect sees it
      }
      if (now === this.tokenInUse) return;
      this.deps.log.info("token file changed: reconnecting with the new token");
      this.deps.backoff.reset();
      this.reconnectNow();
    });
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.unwatchToken();
    if (this.timer) clearTimeout(this.timer);
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  /** The revision last handled: what a reconnect sends as known_revision. */
  get revision(): string {
    return this.knownRevision;
  }

  private reconnectNow(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const call = this.call;
    this.call = undefined;
    call?.cancel();
    this.connect();
  }

  private retryLater(): void {
    if (this.stopped) return;
    const ms = this.deps.backoff.next();
    this.deps.log.info({ retryInMs: ms }, "reconnecting after backoff");
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, ms);
  }

  private connect(): void {
    if (this.stopped) return;
    let token: string;
    try {
      token = this.deps.token.read();
    } catch (err) {
      this.deps.log.error({ error: err instanceof SecretdError ? err.message : "cannot read the token" }, "no usable token");
      this.retryLater();
      return;
    }
    this.tokenInUse = token;
    const md = new Metadata();
    md.set("authorization", `Bearer ${token}`);
    const req = ProjectSecretsRequest.fromPartial({ ...this.deps.request, knownRevision: this.knownRevision });
    const since = Date.now();
    if (this.attempts++ > 0 && this.deps.reopen) this.client = this.deps.reopen();
    const call = this.client.watchProjection(req, md);
    this.call = call;
    if (this.interrupted !== undefined && !ANSWERS.has(this.interrupted)) this.whenConnected(this.client.getChannel(), call);
    call.on("data", (p: Projection) => {
      if (this.call !== call) return;
      this.deps.backoff.reset();
      this.accepted = true;
      this.back();
      this.enqueue(p);
    });
    call.on("error", (_err: ServiceError) => undefined); // read from "status", which every end emits
    call.on("status", (s: StatusObject) => {
      if (this.call !== call) return; // cancelled by us: superseded or stopped
      this.call = undefined;
      if (Date.now() - since >= HEALTHY_MS) this.deps.backoff.reset();
      void this.ended(s);
    });
  }

  /** Logs "watching again" when `call`'s channel is connected while the call is still the current one. */
  private whenConnected(channel: ReturnType<SecretServiceClient["getChannel"]>, call: ClientReadableStream<Projection>): void {
    const check = (): void => {
      if (this.call !== call) return;
      const state = channel.getConnectivityState(false);
      if (state === connectivityState.READY) {
        this.back();
        return;
      }
      if (state === connectivityState.SHUTDOWN) return;
      channel.watchConnectivityState(state, Infinity, check);
    };
    check();
  }

  private back(): void {
    if (this.interrupted === undefined) return;
    this.deps.log.info({ after: this.interrupted }, "watching again");
    this.interrupted = undefined;
  }

  private async ended(s: StatusObject): Promise<void> {
    const code = codeName(s.code);
    this.interrupted = code;
    if (s.code === status.PERMISSION_DENIED || s.code === status.NOT_FOUND) {
      this.deps.log.warn({ code, details: s.details }, "access to the projection is gone: removing the values");
      this.pending = undefined;
      try {
        await this.whenIdle();
        await this.deps.onAccessGone(code, s.details);
        this.knownRevision = ""; // so the first message after access returns is sent, whatever its revision
      } catch (err) {
        this.fatal(err);
        return;
      }
    } else if (s.code === status.INVALID_ARGUMENT && this.accepted) {
      // details name fields and keys, never a value (SecretdError messages never hold one)
      this.deps.log.warn({ code, details: s.details }, "the server refused the projection as its secrets are now: keeping the last good values");
    } else if (s.code === status.INVALID_ARGUMENT || s.code === status.UNIMPLEMENTED) {
      this.fatal(new SecretdError(code === "INVALID_ARGUMENT" ? "INVALID_ARGUMENT" : "UNIMPLEMENTED", `server: ${s.details}`));
      return;
    } else {
      this.deps.log.warn({ code, details: s.details }, "watch ended; keeping the last good values");
    }
    this.retryLater();
  }

  private fatal(err: unknown): void {
    this.stop();
    this.deps.onFatal(err);
  }

  private idleWaiters: Array<() => void> = [];

  private whenIdle(): Promise<void> {
    return this.busy ? new Promise((resolve) => this.idleWaiters.push(resolve)) : Promise.resolve();
  }

  private enqueue(p: Projection): void {
    this.pending = p;
    if (!this.busy) void this.drain();
  }

  private async drain(): Promise<void> {
    this.busy = true;
    try {
      while (this.pending && !this.stopped) {
        const p = this.pending;
        this.pending = undefined;
        try {
          await this.deps.onProjection(p);
        } catch (err) {
          // Once a set was written, a projection that cannot be written as its secrets now
          // are (a key someone added makes two files one path) is not this consumer's doing:
          // the last good set stays and the next change is taken (#26.17).
          if (!(this.written && err instanceof SecretdError && err.code === "INVALID_ARGUMENT")) throw err;
          this.deps.log.warn({ code: err.code, details: err.message }, "the projection cannot be written as its secrets are now: keeping the last good values");
          continue;
        }
        this.written = true;
        this.knownRevision = p.revision;
      }
    } catch (err) {
      this.fatal(err);
    } finally {
      this.busy = false;
      for (const w of this.idleWaiters.splice(0)) w();
    }
  }
}
