// Durations as operators write them (flags, CLI options): the ground floor, shared by
// configuration, the CLI and the sidecar.
import { SecretdError } from "./errors.js";

const UNIT_SECONDS: Readonly<Record<string, number>> = { "": 1, s: 1, m: 60, h: 3600, d: 86_400 };

/** "90s", "15m", "1h", "7d" or plain digits (seconds) → a positive number of seconds. */
export function parseDuration(s: string): number {
  const m = /^(\d{1,15})([smhd]?)$/.exec(s);
  const seconds = m ? Number(m[1]) * (UNIT_SECONDS[m[2] ?? ""] ?? Number.NaN) : Number.NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new SecretdError("INVALID_ARGUMENT", `duration "${s.slice(0, 32)}": expected a positive number with an optional unit s, m, h or d (e.g. 90s, 15m, 1h, 7d)`);
  }
  return seconds;
}
