/**
 * The update_mask `secretd update` sends, from --mask, --clear and the flags given. A
 * mask never drops a flag silently nor wipes a field by accident:
 *   - a flag whose field is outside --mask is a usage error naming both;
 *   - a --mask path that no flag gives is refused unless --clear names it (an empty
 *     value set, no labels, no expiry, … is then written on purpose);
 *   - --clear PATH with a flag for that same path contradicts itself and is refused.
 * With neither --mask nor --clear, the mask is empty and the server replaces the fields
 * the request sets (SPEC §3, UpdateSecretRequest).
 */
import { splitList } from "../config.js";
import { invalid } from "../errors.js";

export const MASK_PATHS = ["data", "labels", "annotations", "description", "expire_time"] as const;
export type MaskPath = (typeof MASK_PATHS)[number];

/** The flags of `update` that set each path. */
const FLAGS_OF: Readonly<Record<MaskPath, readonly string[]>> = {
  data: ["--from-literal", "--from-file"],
  labels: ["--label"],
  annotations: ["--annotation"],
  description: ["--description"],
  expire_time: ["--expire-time", "--ttl"],
};

/** "expireTime", "expire-time" → "expire_time": the server speaks FieldMask paths. */
function normalise(p: string): string {
  return p.replace(/([a-z])([A-Z])/g, "$1_$2").replace(/-/g, "_").toLowerCase();
}

function paths(lists: readonly string[], flag: string): MaskPath[] {
  const out: MaskPath[] = [];
  for (const raw of lists.flatMap((l) => splitList(l))) {
    const p = normalise(raw);
    if (!(MASK_PATHS as readonly string[]).includes(p)) throw invalid(flag, `unknown path "${raw.slice(0, 40)}" (allowed: ${MASK_PATHS.join(", ")})`);
    if (!out.includes(p as MaskPath)) out.push(p as MaskPath);
  }
  return out;
}

/**
 * `given` is the set of update flags present on the command line (e.g. "--label").
 * Returns the mask paths to send ([] = the server's "fields set in the request").
 */
export function updateMask(mask: string | undefined, clear: readonly string[], given: ReadonlySet<string>): MaskPath[] {
  const cleared = paths(clear, "--clear");
  for (const p of cleared) {
    const flag = FLAGS_OF[p].find((f) => given.has(f));
    if (flag !== undefined) throw invalid("--clear", `${p} cannot be cleared and set by ${flag} at once`);
  }
  const setBy = (p: MaskPath): boolean => FLAGS_OF[p].some((f) => given.has(f));
  if (mask === undefined) {
    if (cleared.length === 0) return [];
    return MASK_PATHS.filter((p) => setBy(p) || cleared.includes(p));
  }
  const masked = paths([mask], "--mask");
  if (masked.length === 0) throw invalid("--mask", `give at least one path (${MASK_PATHS.join(", ")})`);
  const shown = masked.join(",");
  for (const p of MASK_PATHS) {
    if (masked.includes(p)) continue;
    const flag = FLAGS_OF[p].find((f) => given.has(f));
    if (flag !== undefined) throw invalid(flag, `sets ${p}, which --mask ${shown} leaves out: add ${p} to --mask, or drop ${flag}`);
    if (cleared.includes(p)) throw invalid("--clear", `${p} is not in --mask ${shown}: add it to --mask, or drop --mask`);
  }
  for (const p of masked) {
    if (!setBy(p) && !cleared.includes(p)) {
      throw invalid("--mask", `${p} is in the mask but no ${FLAGS_OF[p].join(" or ")} gives it: give one, or --clear ${p} to write it empty on purpose`);
    }
  }
  return masked;
}
