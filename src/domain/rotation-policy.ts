/**
 * Scheduled rotation's policy (#30 item 5): carried in a secret's annotations under the
 * reserved `secretd.io/` prefix, the one part of it a caller may write. The period, the
 * values to generate, the rotator, how to retire and the ack timeout are the caller's;
 * `secretd.io/rotation-next` is the server's (the last rotation's start, else the
 * secret's creation, plus the period), written with every version and read-only: sent
 * back (a manifest round-tripped from `get -o yaml`) it is ignored. The next time is an
 * RFC 3339 UTC string of fixed width, so the due-secrets index orders it as text.
 */
import { invalid } from "../errors.js";
import type { GeneratedValue } from "../gen/secrets/v1/secrets.js";
import { MAX_GENERATED, MAX_LENGTH, MIN_LENGTH } from "./generated-values.js";
import { Retire } from "./rotation-enums.js";
import { validateDataKey } from "./validation.js";

export const RESERVED_PREFIX = "secretd.io/";
export const PERIOD = "secretd.io/rotation-period";
export const GENERATE = "secretd.io/rotation-generate";
export const ROTATOR = "secretd.io/rotation-rotator";
export const RETIRE = "secretd.io/rotation-retire";
export const ACK_TIMEOUT = "secretd.io/rotation-ack-timeout";
/** Server-written: when the scheduler rotates the secret next. */
export const NEXT = "secretd.io/rotation-next";

/** The annotations of a policy a caller writes. */
export const POLICY_ANNOTATIONS: readonly string[] = [PERIOD, GENERATE, ROTATOR, RETIRE, ACK_TIMEOUT];
/** Rotator names RotateSecret accepts (rotations.ts). */
export const ROTATOR_NAMES: readonly string[] = ["", "exec", "postgres"];

const MIN_PERIOD_MS = 60_000;
const MAX_PERIOD_MS = 365 * 86_400_000;
const MAX_ACK_TIMEOUT_MS = 7 * 86_400_000;
const RETIRES: Readonly<Record<string, Retire>> = { "after-ack": Retire.RETIRE_AFTER_ACK, immediate: Retire.RETIRE_IMMEDIATE, never: Retire.RETIRE_NEVER };
const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export interface RotationPolicy {
  readonly periodMs: number;
  readonly generate: readonly GeneratedValue[];
  readonly rotator: string;
  readonly retire: Retire;
  /** undefined: RotateSecret's default. */
  readonly ackTimeoutMs: number | undefined;
}

/** A server-owned annotation: reserved, and not one of a policy's. */
export function isServerAnnotation(key: string): boolean {
  return key.startsWith(RESERVED_PREFIX) && !POLICY_ANNOTATIONS.includes(key);
}

const field = (k: string): string => `annotations["${k}"]`;

/** A Go-style duration ("1h30m", "90s", "720h"; units ms, s, m, h) in ms, or undefined. */
export function parseGoDuration(s: string): number | undefined {
  if (!/^(\d{1,10}(ms|s|m|h))+$/.test(s)) return undefined;
  let ms = 0;
  for (const [, n, unit] of s.matchAll(/(\d{1,10})(ms|s|m|h)/g)) ms += Number(n) * UNIT_MS[unit!]!;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

function durationOf(annotations: Readonly<Record<string, string>>, key: string, min: number, max: number, bounds: string): number {
  const ms = parseGoDuration(annotations[key]!);
  if (ms === undefined) throw invalid(field(key), `"${annotations[key]!.slice(0, 32)}" is not a duration (Go style: 30m, 1h, 720h, 1h30m)`);
  if (ms < min || ms > max) throw invalid(field(key), `must be ${bounds}`);
  return ms;
}

function generateOf(spec: string): GeneratedValue[] {
  const items = spec.split(",").map((s) => s.trim());
  if (items.length > MAX_GENERATED) throw invalid(field(GENERATE), `names at most ${MAX_GENERATED} keys`);
  const keys = new Set<string>();
  return items.map((item) => {
    const m = /^([^:\s]+):(\d{1,5})$/.exec(item);
    if (!m) throw invalid(field(GENERATE), `"${item.slice(0, 64)}" is not key:length (e.g. password:32,token:64)`);
    const [key, length] = [m[1]!, Number(m[2])];
    validateDataKey(key, field(GENERATE));
    if (keys.has(key)) throw invalid(field(GENERATE), `names key "${key}" twice`);
    keys.add(key);
    if (length < MIN_LENGTH || length > MAX_LENGTH) throw invalid(field(GENERATE), `length of "${key}" must be ${MIN_LENGTH}-${MAX_LENGTH}`);
    return { key, length, alphabet: "" };
  });
}

/**
 * The policy the annotations hold, undefined when none: INVALID_ARGUMENT naming the
 * annotation for a bad one (a policy needs a period and the values to generate).
 */
export function parsePolicy(annotations: Readonly<Record<string, string>>): RotationPolicy | undefined {
  const given = POLICY_ANNOTATIONS.filter((k) => annotations[k] !== undefined);
  if (given.length === 0) return undefined;
  if (annotations[PERIOD] === undefined) throw invalid(field(PERIOD), `is required with ${given.join(", ")}`);
  const periodMs = durationOf(annotations, PERIOD, MIN_PERIOD_MS, MAX_PERIOD_MS, "at least 1m and at most 1 year (8760h)");
  const rotator = annotations[ROTATOR] ?? "";
  if (!ROTATOR_NAMES.includes(rotator)) throw invalid(field(ROTATOR), `unknown rotator "${rotator.slice(0, 64)}" (allowed: "", ${ROTATOR_NAMES.filter((n) => n !== "").join(", ")})`);
  // The postgres rotator makes username and password itself: the policy may generate other keys only.
  const postgres = rotator === "postgres";
  if (annotations[GENERATE] === undefined && !postgres) {
    throw invalid(field(GENERATE), "is required with a rotation period: the keys the scheduler generates (key:length[,key:length])");
  }
  const generate = annotations[GENERATE] === undefined ? [] : generateOf(annotations[GENERATE]);
  const own = generate.find((g) => g.key === "username" || g.key === "password");
  if (postgres && own !== undefined) throw invalid(field(GENERATE), `must not name "${own.key}": the postgres rotator makes username and password itself`);
  const retireName = annotations[RETIRE] ?? "after-ack";
  const retire = RETIRES[retireName];
  if (retire === undefined) throw invalid(field(RETIRE), `must be after-ack, immediate or never (got "${retireName.slice(0, 32)}")`);
  let ackTimeoutMs: number | undefined;
  if (annotations[ACK_TIMEOUT] !== undefined) {
    if (retire !== Retire.RETIRE_AFTER_ACK) throw invalid(field(ACK_TIMEOUT), "applies to retire after-ack only");
    ackTimeoutMs = durationOf(annotations, ACK_TIMEOUT, 1000, MAX_ACK_TIMEOUT_MS, "at least 1s and at most 7 days (168h)");
  }
  return { periodMs, generate, rotator, retire, ackTimeoutMs };
}

/** The annotations with `rotation-next` set from `base` (ms) when they hold a policy, and removed when not. */
export function withRotationNext(annotations: Readonly<Record<string, string>>, base: number): Record<string, string> {
  const { [NEXT]: _old, ...rest } = annotations;
  const policy = parsePolicy(rest);
  return policy === undefined ? rest : { ...rest, [NEXT]: new Date(base + policy.periodMs).toISOString() };
}
