/**
 * The keyring a server starts with, checked against the database first: a server must
 * refuse to start rather than serve DATA_LOSS for every stored secret. A dev KEK is
 * generated only at the default path and only for a database that holds no version;
 * any KEK id a stored data key names must be in the keyring file.
 */
import { existsSync } from "node:fs";
import { SecretdError } from "../errors.js";
import type { Storage } from "../storage/storage.js";
import { KeyringHolder, type KeyringHolderOptions } from "../crypto/keyring-holder.js";

export interface ServerKeyringOptions extends Omit<KeyringHolderOptions, "create"> {
  readonly file: string;
  /** The file is the default one in the data dir (a dev KEK may be created there). */
  readonly isDefaultFile: boolean;
}

function ids(list: readonly string[]): string {
  return `${list.length === 1 ? "id" : "ids"} ${list.map((id) => JSON.stringify(id.slice(0, 64))).join(", ")}`;
}

export async function openServerKeyring(storage: Storage, opts: ServerKeyringOptions): Promise<KeyringHolder> {
  const inUse = (await storage.kekIdsInUse()).sort();
  if (inUse.length > 0 && !existsSync(opts.file)) {
    throw new SecretdError(
      "FAILED_PRECONDITION",
      `refusing to start: the database holds data keys wrapped by KEK ${ids(inUse)}, but there is no KEK file at ${opts.file}; ` +
        "restore that keyring (a new one would leave every stored secret unreadable)",
    );
  }
  const holder = new KeyringHolder(opts.file, { create: opts.isDefaultFile && inUse.length === 0, watch: opts.watch, info: opts.info, warn: opts.warn });
  const ring = holder.current();
  const missing = inUse.filter((id) => ring.get(id) === undefined);
  if (missing.length > 0) {
    holder.close();
    throw new SecretdError(
      "FAILED_PRECONDITION",
      `refusing to start: the database holds data keys wrapped by KEK ${ids(missing)}, which the keyring ${opts.file} lacks; ` +
        "restore the keyring file that holds them (it holds " + ids(ring.keys.map((k) => k.id)) + ")",
    );
  }
  return holder;
}
