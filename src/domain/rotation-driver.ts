/**
 * Drives AFTER_ACK rotations to their end (#30 item 4): every process runs one; each
 * active rotation is driven by exactly one of them, the one holding its claim (a lease on
 * the rotation's row, renewed while it drives and taken over once it lapses, so a process
 * that dies mid-way is replaced; a server stopping in order lets go at once). The holder
 * asks the RolloutProbe whether every live consumer applied the new version: when so, it
 * retires the previous version (state DONE); at the deadline it retires it anyway and
 * records who never confirmed (TIMED_OUT). Time is the server's clock; the storage is
 * looked at every `intervalMs`, and at once when this process started a rotation.
 */
import { RotationState } from "./rotation-enums.js";
import type { RotationRow, Storage } from "../storage/storage.js";
import type { RotatorOutcome } from "./exec-rotator.js";
import type { ProbedConsumer, RolloutProbe } from "./rollout-probe.js";
import type { RotationSteps } from "./rotation-step.js";

export interface RotationDriverOptions {
  readonly storage: Storage;
  readonly probe: RolloutProbe;
  /** This process's name in claims (unique per start). */
  readonly driver: string;
  readonly now: () => number;
  readonly intervalMs?: number;
  readonly claimTtlMs?: number;
  /** Runs a rotation's retire hook (its rotator's "retire") before the previous version goes; none: no hooks. */
  readonly retireHook?: (r: RotationRow) => Promise<RotatorOutcome>;
  /** Runs PENDING rotations' rotator steps (write-ahead, rotation-step.ts); none: they wait. */
  readonly steps?: RotationSteps;
  /** The longest a retire hook may run (the claim is extended by it first, so no other process starts the hook too). */
  readonly hookBoundMs?: number;
  /** Told of each rotation this process finished (for the log): identifiers only. */
  readonly onFinished?: (r: RotationRow, state: number, detail: string) => void;
  readonly onError?: (err: unknown) => void;
}

export const ROTATION_DRIVER_DEFAULTS = { intervalMs: 250, claimTtlMs: 15_000 } as const;
const BATCH = 100;
/** Consumers named in a TIMED_OUT detail; the rest are counted. */
const NAMED = 20;

/** Who never confirmed, for the record: subs, consumer ids and replicas (never a value). */
export function timedOutDetail(version: number, timeoutMs: number, behind: readonly ProbedConsumer[]): string {
  const named = behind.slice(0, NAMED).map((c) => `sub "${c.sub}" (consumer ${c.watchId} on ${c.replica})`);
  const more = behind.length > NAMED ? `, and ${behind.length - NAMED} more` : "";
  const who = behind.length === 0 ? "" : `: ${behind.length} consumer(s) never confirmed version ${version}: ${named.join(", ")}${more}`;
  return `ack_timeout (${Math.round(timeoutMs / 1000)}s) passed${who}; previous version retired anyway`;
}

export class RotationDriver {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private readonly claimTtlMs: number;

  constructor(private readonly o: RotationDriverOptions) {
    this.claimTtlMs = o.claimTtlMs ?? ROTATION_DRIVER_DEFAULTS.claimTtlMs;
  }

  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.intervalMs ?? ROTATION_DRIVER_DEFAULTS.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** Looks at the active rotations now (one pass at a time; a kick during a pass runs another after it). */
  kick(): void {
    if (this.stopped) return;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: unknown) => this.o.onError?.(err))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Stops driving and lets go of this process's claims, so another process resumes them at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
    await this.o.storage.releaseRotations(this.o.driver);
  }

  private async pass(): Promise<void> {
    for (const r of await this.o.storage.listActiveRotations(BATCH)) {
      if (this.stopped) return;
      await this.drive(r);
    }
  }

  /** A PENDING rotation: its rotator step again once its backoff passed (the claim extended by the step's bound first). */
  private async step(r: RotationRow, mine: boolean): Promise<void> {
    const steps = this.o.steps;
    if (steps === undefined || !steps.due(r)) {
      // Waiting out a backoff here: keep the claim, so no other process runs it sooner.
      if (r.driver === this.o.driver && !mine) await this.o.storage.claimRotation(r.secretUid, r.version, this.o.driver, this.o.now(), this.o.now() + this.claimTtlMs);
      return;
    }
    const t = this.o.now();
    const expire = t + this.claimTtlMs + (this.o.hookBoundMs ?? 0);
    if (!(await this.o.storage.claimRotation(r.secretUid, r.version, this.o.driver, t, expire))) return;
    const result = await steps.run(r, { driver: this.o.driver, expire });
    if (result.kind === "promoted") this.again = true;
  }

  private async drive(r: RotationRow): Promise<void> {
    const { storage, driver } = this.o;
    const now = this.o.now();
    if (r.driver !== driver && r.driver !== "" && r.driverExpire > now) return; // another process's, and live
    const mine = r.driver === driver && r.driverExpire - now > this.claimTtlMs / 2;
    if (r.state === RotationState.ROTATION_STATE_PENDING) return this.step(r, mine);
    if (!mine && !(await storage.claimRotation(r.secretUid, r.version, driver, now, now + this.claimTtlMs))) return;
    const probed = await this.o.probe(r.secretUid, r.version);
    let state: number;
    let detail: string;
    if (r.state === RotationState.ROTATION_STATE_RETIRING) {
      // IMMEDIATE with a rotator: retired now, through the hook.
      state = RotationState.ROTATION_STATE_DONE;
      detail = `version ${r.previousVersion} retired at once (IMMEDIATE)`;
    } else if (probed.converged) {
      state = RotationState.ROTATION_STATE_DONE;
      detail = `every live consumer (${probed.consumers}) applied version ${r.version}; version ${r.previousVersion} retired`;
    } else if (this.o.now() >= r.deadline) {
      state = RotationState.ROTATION_STATE_TIMED_OUT;
      detail = timedOutDetail(r.version, r.deadline - r.started, probed.behind);
    } else return;
    if (r.rotator !== "" && this.o.retireHook !== undefined) {
      const t = this.o.now();
      if (!(await storage.claimRotation(r.secretUid, r.version, driver, t, t + this.claimTtlMs + (this.o.hookBoundMs ?? 0)))) return;
      const hook = await this.o.retireHook(r);
      if (hook.ok) detail += `; ${r.rotator} retire hook ran`;
      else {
        state = RotationState.ROTATION_STATE_FAILED;
        detail += `; ${r.rotator} retire hook failed (${hook.reason})`;
      }
    }
    const finished = this.o.now();
    if (await storage.finishRotation(r.secretUid, r.version, driver, { state, finished, detail, retirePrevious: true })) this.o.onFinished?.(r, state, detail);
  }
}
