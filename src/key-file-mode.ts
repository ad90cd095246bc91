/** Files holding key material must be reachable by their owner only (what `doctor` and `serve` check). */
import { statSync } from "node:fs";

/** The file's mode as four octal digits when group or others have any access to it; undefined when owner-only or missing. */
export function looseKeyFileMode(file: string): string | undefined {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st === undefined || (st.mode & 0o077) === 0) return undefined;
  return (st.mode & 0o777).toString(8).padStart(4, "0");
}
