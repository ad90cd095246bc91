/**
 * mkdir -p that always ends. Node's `mkdirSync(dir, { recursive: true })` loops forever
 * where mkdir answers ENOENT for a parent that exists (e.g. under /proc), which made
 * `serve --data-dir /proc/nope` spin at 100 % CPU. Here each missing directory is made
 * one by one, from the first existing ancestor down, and a failure names the directory.
 */
import * as fs from "node:fs";
import path from "node:path";
import { SecretdError } from "./errors.js";

/** Creates `dir` and its missing parents with `mode`; returns the first one created (like mkdirSync). */
export function makeDirs(dir: string, mode = 0o700): string | undefined {
  const target = path.resolve(dir);
  const missing: string[] = [];
  for (let d = target; ; d = path.dirname(d)) {
    const st = fs.statSync(d, { throwIfNoEntry: false });
    if (st !== undefined) {
      if (!st.isDirectory()) throw new SecretdError("FAILED_PRECONDITION", `cannot create directory ${target}: ${d} is not a directory`);
      break;
    }
    missing.push(d);
    if (path.dirname(d) === d) break;
  }
  missing.reverse();
  for (const d of missing) {
    try {
      fs.mkdirSync(d, { mode });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && fs.statSync(d, { throwIfNoEntry: false })?.isDirectory()) continue;
      throw new SecretdError("FAILED_PRECONDITION", `cannot create directory ${d} (${code ?? "error"})${d === target ? "" : ` for ${target}`}`);
    }
  }
  return missing[0];
}
