/**
 * Rewrapping stored data keys under the active KEK after a rotation. Only the wrapped
 * data key of each version changes (the payload is sealed by the data key, which stays
 * the same), one small transaction per batch, each row a compare-and-set on its old
 * bytes, so a server keeps reading and writing the same database meanwhile: every blob
 * opens under the old KEK until its row is replaced, and under the new one after.
 *
 * A server that has not yet noticed the rotation still wraps new versions with the old
 * KEK, so after the full pass the scan repeats until it finds none and the servers have
 * had time to notice (`settleUntil`, a few of their keyring polls); bounded by maxPasses.
 */
import { SecretdError } from "../errors.js";
import type { DekReplacement, Storage, VersionKeyRow } from "../storage/storage.js";
import { secretAad } from "../crypto/aad.js";
import { kekIdOf, rewrapDek } from "../crypto/envelope.js";
import type { KeyringSource } from "../crypto/keyring.js";

export type RewrapStorage = Pick<Storage, "listVersionKeys" | "replaceDeks">;

/** A version whose data key cannot be unwrapped (tampered, or its KEK is gone). */
export interface UnreadableVersion {
  readonly uid: string;
  readonly version: number;
  readonly tenant: string;
  readonly mesh: string;
  readonly name: string;
}

export interface PassResult {
  readonly examined: number;
  readonly rewrapped: number;
  /** Rows that needed a rewrap but were not replaced (changed or destroyed meanwhile). */
  readonly missed: number;
  readonly unreadable: readonly UnreadableVersion[];
}

export interface RewrapOptions {
  /** Versions per read and per write transaction. */
  readonly batchSize: number;
  /** Keep re-scanning, even after a clean pass, until this time (ms since the epoch). */
  readonly settleUntil: number;
  /** Pause between clean re-scans while settling. */
  readonly rescanMs: number;
  readonly maxPasses: number;
  /** Called after each batch with the pass's counts so far (a progress line). */
  readonly onBatch?: (progress: { pass: number; examined: number; rewrapped: number }) => void;
}

export interface RewrapResult {
  /** The KEK every readable data key is wrapped by at the end. */
  readonly activeKekId: string;
  readonly rewrapped: number;
  /** Of those, rewrapped after the first full pass (written by a server meanwhile). */
  readonly rewrappedLate: number;
  readonly passes: number;
  readonly unreadable: readonly UnreadableVersion[];
}

/** One scan over every version, rewrapping those not under the active KEK. */
export async function rewrapPass(
  storage: RewrapStorage,
  keys: KeyringSource,
  batchSize: number,
  onBatch: (counts: { examined: number; rewrapped: number }) => void = () => undefined,
): Promise<PassResult> {
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new SecretdError("INVALID_ARGUMENT", "batch size must be a positive integer");
  let examined = 0;
  let rewrapped = 0;
  let missed = 0;
  const unreadable: UnreadableVersion[] = [];
  let after = { uid: "", version: 0 };
  for (;;) {
    const rows = await storage.listVersionKeys(after.uid, after.version, batchSize);
    const last = rows.at(-1);
    if (last === undefined) break;
    after = { uid: last.uid, version: last.version };
    examined += rows.length;
    const batch: DekReplacement[] = [];
    for (const row of rows) {
      const newDek = rewrapRow(keys, row);
      if (newDek === "unreadable") unreadable.push(identity(row));
      else if (newDek !== undefined) batch.push({ uid: row.uid, version: row.version, oldDek: row.dek, newDek });
    }
    if (batch.length > 0) {
      const applied = await storage.replaceDeks(batch);
      rewrapped += applied;
      missed += batch.length - applied;
    }
    onBatch({ examined, rewrapped });
    if (rows.length < batchSize) break;
  }
  return { examined, rewrapped, missed, unreadable };
}

/** A full pass, then re-scans until one is clean after `settleUntil`. */
export async function rewrapAll(storage: RewrapStorage, keys: KeyringSource, opts: RewrapOptions): Promise<RewrapResult> {
  let total = 0;
  let late = 0;
  for (let passes = 1; passes <= opts.maxPasses; passes++) {
    const r = await rewrapPass(storage, keys, opts.batchSize, (counts) => opts.onBatch?.({ pass: passes, ...counts }));
    total += r.rewrapped;
    if (passes > 1) late += r.rewrapped;
    const clean = r.rewrapped === 0 && r.missed === 0;
    const wait = opts.settleUntil - Date.now();
    if (clean && wait <= 0) {
      return { activeKekId: keys.current().active.id, rewrapped: total, rewrappedLate: late, passes, unreadable: r.unreadable };
    }
    if (clean) await new Promise((resolve) => setTimeout(resolve, Math.min(opts.rescanMs, wait)));
  }
  throw new SecretdError(
    "ABORTED",
    `data keys wrapped by an older KEK kept appearing after ${opts.maxPasses} passes (${total} rewrapped so far); run \`secretd keys rewrap\` again`,
  );
}

/** The data key rewrapped under the active KEK; undefined when it already is. */
function rewrapRow(keys: KeyringSource, row: VersionKeyRow): Buffer | "unreadable" | undefined {
  try {
    const id = kekIdOf(row.dek);
    if (id === keys.current().active.id) return undefined;
    const aad = secretAad({ tenant: row.tenant, mesh: row.mesh, name: row.name, uid: row.uid, version: row.version });
    return rewrapDek(keys.holding(id), aad, row.dek);
  } catch (err) {
    // Tampered, or its KEK is missing from the file: reported and left as it is.
    if (err instanceof SecretdError && (err.code === "DATA_LOSS" || err.code === "INVALID_ARGUMENT")) return "unreadable";
    throw err;
  }
}

function identity(row: VersionKeyRow): UnreadableVersion {
  return { uid: row.uid, version: row.version, tenant: row.tenant, mesh: row.mesh, name: row.name };
}
