/**
 * Scheduled rotation (#30 item 5): every process runs one scheduler; it looks up the due
 * secrets (their rotation-next at or before the server's clock, by an index), claims a
 * secret's due time (one process of --workers or of PostgreSQL replicas gets it), and
 * calls RotateSecret for the secret's tenant as the system principal SCHEDULER_SUB, whose
 * only authority is WRITE on that one secret, with the etag the due time was read with:
 * a secret rotated or updated meanwhile refuses it (the etag compare-and-set), as a second
 * rotation is refused while one is running, and such a loser lets go quietly. The call is
 * audited as RotateSecret by SCHEDULER_SUB. A failed rotation is recorded (GetRollout's
 * detail shows it, rollout.ts) and retried with backoff: 1 minute, doubling per failure,
 * at most the period; once it succeeds, the next time counts from that rotation's start.
 */
import { SecretdError } from "../errors.js";
import type { RotateSecretRequest } from "../gen/secrets/v1/secrets.js";
import type { AuditRow, DueSecret, Storage } from "../storage/storage.js";
import { Level } from "./access.js";
import type { Principal } from "./principal.js";
import { parsePolicy, type RotationPolicy } from "./rotation-policy.js";
import type { Rotations } from "./rotations.js";

export const SCHEDULER_SUB = "secretd:scheduler";
export const SCHEDULER_DEFAULTS = { intervalMs: 1000, claimTtlMs: 5 * 60_000, firstBackoffMs: 60_000 } as const;
const BATCH = 50;

export interface RotationSchedulerOptions {
  readonly storage: Storage;
  readonly rotations: Pick<Rotations, "rotate">;
  readonly audit: { record(event: AuditRow): void };
  /** This process's name in claims (unique per start). */
  readonly claimer: string;
  readonly now: () => number;
  readonly intervalMs?: number;
  /** Told of each scheduled rotation (for the log): identifiers and outcome only. */
  readonly onRotated?: (d: DueSecret, outcome: { version: number } | { failed: string; retryAt: number }) => void;
  readonly onError?: (err: unknown) => void;
}

/** The system principal a scheduled rotation of `d` runs as: WRITE on that secret, nothing else. */
export function schedulerPrincipal(d: DueSecret): Principal {
  return { sub: SCHEDULER_SUB, tenant: d.tenant, roles: [], meshes: undefined, exp: undefined, only: { secretUid: d.uid, level: Level.WRITE } };
}

/** The RotateSecret a policy asks for. */
export function scheduledRequest(d: DueSecret, policy: RotationPolicy): RotateSecretRequest {
  const ack = policy.ackTimeoutMs;
  return {
    mesh: d.mesh,
    name: d.name,
    etag: d.etag,
    data: {},
    stringData: {},
    generate: [...policy.generate],
    retire: policy.retire,
    ackTimeout: ack === undefined ? undefined : { seconds: Math.floor(ack / 1000), nanos: (ack % 1000) * 1e6 },
    rotator: policy.rotator,
  };
}

/** After `failures` failed attempts: 1 minute, doubling, at most the period. */
export function backoffMs(failures: number, periodMs: number): number {
  return Math.min(periodMs, SCHEDULER_DEFAULTS.firstBackoffMs * 2 ** Math.min(20, Math.max(0, failures - 1)));
}

/** Lost to another writer: the etag moved on, or a rotation is running. */
function lostRace(err: unknown): boolean {
  return err instanceof SecretdError && (err.code === "ABORTED" || (err.code === "FAILED_PRECONDITION" && err.message.includes("is already being rotated")));
}

export class RotationScheduler {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly o: RotationSchedulerOptions) {}

  start(): void {
    this.timer = setInterval(() => this.kick(), this.o.intervalMs ?? SCHEDULER_DEFAULTS.intervalMs);
    this.timer.unref();
    this.kick();
  }

  /** One pass at a time; a tick during a pass is skipped. */
  kick(): void {
    if (this.stopped || this.running !== undefined) return;
    this.running = this.pass()
      .catch((err: unknown) => this.o.onError?.(err))
      .finally(() => (this.running = undefined));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.running;
  }

  private async pass(): Promise<void> {
    const now = this.o.now();
    for (const d of await this.o.storage.listDueRotations(new Date(now).toISOString(), now, BATCH)) {
      if (this.stopped) return;
      await this.rotate(d);
    }
  }

  private async rotate(d: DueSecret): Promise<void> {
    const { storage, claimer } = this.o;
    const policy = parsePolicy(d.annotations);
    if (policy === undefined) return;
    const t = this.o.now();
    if (!(await storage.claimDueRotation(d.uid, d.due, claimer, t, t + SCHEDULER_DEFAULTS.claimTtlMs))) return;
    const req = scheduledRequest(d, policy);
    let version = 0;
    let stage = "";
    let code = "OK";
    try {
      const rotated = await this.o.rotations.rotate(schedulerPrincipal(d), req);
      version = rotated.version;
      stage = rotated.rotation.state === "pending" ? "pending" : "current";
    } catch (err) {
      if (lostRace(err)) {
        code = ""; // not this process's rotation: nothing to audit
        await storage.releaseDueRotation(d.uid, claimer);
        return;
      }
      code = err instanceof SecretdError ? err.code : "INTERNAL";
      // SecretdError messages name secrets, versions and reasons, never a value.
      const reason = err instanceof SecretdError ? err.message : "internal error";
      const failedAt = this.o.now();
      const failures = ((await storage.readDueRotation(d.uid))?.failures ?? 0) + 1;
      const retryAt = failedAt + backoffMs(failures, policy.periodMs);
      await storage.failDueRotation(d.uid, claimer, { error: `${code}: ${reason}`.slice(0, 1024), failedAt, retryAt });
      this.o.onRotated?.(d, { failed: code, retryAt });
      if (!(err instanceof SecretdError)) this.o.onError?.(err);
    } finally {
      const keys = policy.generate.map((g) => g.key).sort();
      if (code !== "") this.o.audit.record({ tenant: d.tenant, time: this.o.now(), requestId: "", method: "RotateSecret", sub: SCHEDULER_SUB, mesh: d.mesh, name: d.name, version, keys, code, peer: "", stage });
    }
    if (version > 0) this.o.onRotated?.(d, { version });
  }
}
