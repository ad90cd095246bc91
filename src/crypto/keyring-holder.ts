/**
 * A keyring that follows its file, so a running server keeps serving while
 * `secretd keys rotate` (another process) adds a KEK and rewraps data keys:
 *
 * - a blob that names a KEK id this process does not know makes it re-read the file
 *   at once, but only when the file changed since it was last read (one stat). So a
 *   rewrapped blob opens on first sight, while a flood of blobs naming a bogus id costs
 *   a stat each and never a re-parse. (A fixed "once per second" limit would instead
 *   fail a genuine new id that arrives within a second of an unrelated check.)
 * - the file is polled (fs.watchFile, ~1 s), so new versions are sealed with the new
 *   active KEK soon after a rotation even before any rewrapped blob is read.
 *
 * A file that cannot be read or parsed leaves the keys in use untouched and is reported
 * once per change of the file.
 */
import * as fs from "node:fs";
import { loadKeyring, type Keyring, type KeyringSource } from "./keyring.js";

/** How often a watching holder polls its file; `keys rotate` waits a few of these. */
export const KEYRING_POLL_MS = 1000;

export interface KeyringHolderOptions {
  /** Create the file with one fresh key when it is missing (the dev default path only). */
  readonly create: boolean;
  /** Poll the file for changes (the server); off for one-shot commands. */
  readonly watch: boolean;
  readonly info: (msg: string) => void;
  readonly warn: (msg: string) => void;
}

export class KeyringHolder implements KeyringSource {
  #ring: Keyring;
  #signature: string;
  readonly #listener = (): void => this.refresh();

  constructor(
    readonly file: string,
    private readonly opts: KeyringHolderOptions,
  ) {
    // Stat before reading: a change in between is then seen as a change next time.
    this.#signature = signatureOf(file);
    this.#ring = loadKeyring(file, { create: opts.create, warn: opts.warn });
    if (opts.watch) fs.watchFile(file, { interval: KEYRING_POLL_MS, persistent: false }, this.#listener);
  }

  current(): Keyring {
    return this.#ring;
  }

  holding(kekId: string): Keyring {
    if (this.#ring.get(kekId) === undefined) this.refresh();
    return this.#ring;
  }

  /** Re-reads the file when it changed since the last read. */
  refresh(): void {
    const signature = signatureOf(this.file);
    if (signature === this.#signature) return;
    this.#signature = signature;
    try {
      const next = loadKeyring(this.file, { create: false, warn: this.opts.warn });
      if (next.active.id !== this.#ring.active.id) {
        this.opts.info(`keyring ${this.file} reloaded: new data keys are now wrapped by KEK ${next.active.id}`);
      }
      this.#ring.dataKeys.clear();
      this.#ring = next;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.opts.warn(`keyring ${this.file} changed but could not be reloaded, so the keys in use are kept: ${why}`);
    }
  }

  /** Stops polling the file and wipes the cached data keys. */
  close(): void {
    if (this.opts.watch) fs.unwatchFile(this.file, this.#listener);
    this.#ring.dataKeys.clear();
  }
}

/**
 * Identity of the file's current content. `rotateKeyring` renames a new file into place,
 * so the inode changes on every rotation, and the size grows by one key.
 */
function signatureOf(file: string): string {
  try {
    const st = fs.statSync(file, { bigint: true, throwIfNoEntry: false });
    return st === undefined ? "absent" : `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  } catch {
    return "unreadable"; // loadKeyring then says why, once
  }
}
