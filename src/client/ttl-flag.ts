/**
 * `--ttl` (create, update, grant, token mint): a duration with its unit. A bare number is
 * refused rather than read as seconds: `--ttl 30` is as likely to mean 30 minutes or days.
 * The shared parser (parseDuration) still takes plain seconds for its other callers.
 */
import { parseDuration } from "../duration.js";
import { invalid } from "../errors.js";

export function ttlSeconds(v: string): number {
  const shown = JSON.stringify(v.slice(0, 32));
  if (/^\d+$/.test(v)) throw invalid("--ttl", `${shown} has no unit: write it as 30s, 5m, 1h or 7d (a bare number is not taken as seconds)`);
  try {
    return parseDuration(v);
  } catch {
    throw invalid("--ttl", `${shown} is not a duration like 90s, 15m, 1h or 7d`);
  }
}
