/**
 * google.protobuf.Timestamp at the edge: its range is 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999999Z, and strict clients (Go protojson, Python json_format)
 * refuse a whole answer holding one outside it. ts-proto turns a Timestamp into a Date
 * through `seconds * 1000 + nanos / 1e6` in floating point, which rounds .999999999 up
 * to the next second (9999-12-31T23:59:59.999999999Z became 10000-01-01T00:00:00Z); here
 * the conversion is integer arithmetic that truncates to the millisecond, never rounds up.
 */

export const MIN_TIMESTAMP_SECONDS = -62_135_596_800;
export const MAX_TIMESTAMP_SECONDS = 253_402_300_799;
/** The latest instant a millisecond Date can hold inside Timestamp's range. */
export const MAX_TIMESTAMP_MS = MAX_TIMESTAMP_SECONDS * 1000 + 999;

/** Which field of a Timestamp is out of range and why, or undefined when both are in it. */
export function timestampProblem(seconds: bigint, nanos: number): { field: "seconds" | "nanos"; rule: string } | undefined {
  if (seconds < BigInt(MIN_TIMESTAMP_SECONDS) || seconds > BigInt(MAX_TIMESTAMP_SECONDS)) {
    return { field: "seconds", rule: "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z (-62135596800 to 253402300799)" };
  }
  if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999) return { field: "nanos", rule: "must be between 0 and 999999999" };
  return undefined;
}

/** Epoch milliseconds of an in-range Timestamp, truncated (exact: both terms are integers below 2^53). */
export function timestampMs(seconds: bigint, nanos: number): number {
  return Number(seconds) * 1000 + Math.floor(nanos / 1_000_000);
}

/**
 * The Date an answer carries for stored epoch milliseconds, held inside Timestamp's
 * range (a row stored before input was truncated may hold 10000-01-01T00:00:00Z; times
 * before 1970 are never stored, and ts-proto would encode them with negative nanos).
 */
export function emittedTime(ms: number): Date {
  return new Date(Math.min(Math.max(ms, 0), MAX_TIMESTAMP_MS));
}
