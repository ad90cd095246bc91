/**
 * The kubelet's atomic writer, for one projection directory:
 *
 *   DIR/..2026_12_03_10_00_00.123456789/db/pw     one complete set of files
 *   DIR/..data -> ..2026_12_03_10_00_00.123456789  swapped with rename(2): atomic
 *   DIR/db -> ..data/db                            each top-level entry goes through ..data
 *
 * A new set is written into a fresh timestamped directory (files created exclusively,
 * with their modes, fsynced), then `..data` is replaced in one rename, then the old set
 * is removed. A reader opening `DIR/db/pw` gets the old file or the new one, never half
 * of one; a reader that resolves `DIR/..data` once and reads every file under it sees
 * one whole set, never a mix of two.
 *
 * Contract: nothing outside DIR is ever written or removed, whatever DIR holds. A path
 * that would escape DIR, an entry in DIR that is not the layout's own (a symlink planted
 * where a top-level link or `..data` goes, a symlink inside a set), or a set over the
 * limits is refused with a SecretdError before anything is written. Writing a set equal
 * to the one on disk (paths, modes, bytes) changes nothing.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import path from "node:path";
import { SecretdError, invalid } from "../errors.js";

export interface ProjectedFile {
  /** Relative to DIR, `/`-separated, e.g. "db/password". */
  readonly path: string;
  readonly mode: number;
  readonly value: Uint8Array;
}

export interface WriteResult {
  /** False when the set on disk already was this one: nothing was touched. */
  readonly changed: boolean;
  /** The name of the timestamped directory `..data` points at after the write. */
  readonly set: string;
}

/** The server caps a projection at 4,096 mappings and 8 MiB of values; so does the writer. */
export const MAX_FILES = 4096;
export const MAX_TOTAL_BYTES = 8 * 1024 * 1024;
const MAX_PATH = 4096;
const MAX_SEGMENT = 255;

const DATA_LINK = "..data";
const DATA_TMP = "..data_tmp";
const SET_NAME = /^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/;

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** `..2026_12_03_10_00_00.123456789` (UTC), as the kubelet names its sets. */
export function setName(now: Date, nanos: number): string {
  return (
    `..${now.getUTCFullYear()}_${pad(now.getUTCMonth() + 1)}_${pad(now.getUTCDate())}_` +
    `${pad(now.getUTCHours())}_${pad(now.getUTCMinutes())}_${pad(now.getUTCSeconds())}.${pad(nanos, 9)}`
  );
}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "error";
}

/** Checks one relative path of a set; the message names the path, never a value. */
export function validateFilePath(p: string): string[] {
  const field = `path "${p.slice(0, 128)}"`;
  if (p === "" || p.length > MAX_PATH || p.includes("\0")) throw invalid(field, "is not a valid file path");
  if (p.startsWith("/") || path.isAbsolute(p)) throw invalid(field, "must be relative to the directory");
  const segments = p.split("/");
  for (const s of segments) {
    if (s === "" || s === "." || s.startsWith("..")) throw invalid(field, "must not escape the directory ('..', '.', empty segments or a segment starting with '..')");
    if (s.length > MAX_SEGMENT) throw invalid(field, `has a segment longer than ${MAX_SEGMENT} characters`);
  }
  return segments;
}

/** Checks a whole set: paths, no file that is also a directory of another, limits. */
export function validateSet(files: readonly ProjectedFile[]): void {
  if (files.length > MAX_FILES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection has ${files.length} files, more than ${MAX_FILES}`);
  let total = 0;
  const seen = new Set<string>();
  const dirs = new Set<string>();
  for (const f of files) {
    const segments = validateFilePath(f.path);
    if (!Number.isInteger(f.mode) || f.mode <= 0 || f.mode > 0o777) throw invalid(`mode of "${f.path}"`, "must be a file mode between 0001 and 0777");
    if (seen.has(f.path)) throw invalid(`path "${f.path}"`, "appears twice");
    seen.add(f.path);
    for (let i = 1; i < segments.length; i++) dirs.add(segments.slice(0, i).join("/"));
    total += f.value.length;
    if (total > MAX_TOTAL_BYTES) throw new SecretdError("RESOURCE_EXHAUSTED", `projection exceeds ${MAX_TOTAL_BYTES} bytes`);
  }
  for (const p of seen) if (dirs.has(p)) throw invalid(`path "${p}"`, "is both a file and a directory of another file");
}

/**
 * A directory is 0700, plus read and search for group/others when a file beneath it
 * grants them read: a 0444 file in a 0700 directory could not be reached by anyone
 * but the owner, which is not what its mode says.
 */
function dirMode(modes: readonly number[]): number {
  let mode = 0o700;
  for (const m of modes) {
    if (m & 0o070) mode |= 0o050;
    if (m & 0o007) mode |= 0o005;
  }
  return mode;
}

function dirModes(files: readonly ProjectedFile[]): Map<string, number> {
  const under = new Map<string, number[]>([["", []]]);
  for (const f of files) {
    const segments = f.path.split("/");
    for (let i = 0; i < segments.length; i++) {
      const d = segments.slice(0, i).join("/");
      const list = under.get(d) ?? [];
      list.push(f.mode);
      under.set(d, list);
    }
  }
  return new Map([...under].map(([d, modes]) => [d, dirMode(modes)]));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

export class AtomicWriter {
  private lastNanos = 0;

  constructor(readonly dir: string) {}

  /**
   * DIR must be a directory this process can write: checked by creating and removing a
   * probe directory, so permissions, read-only mounts and ACLs all count. A missing DIR
   * is created (0700) when its parent exists, as the kubelet and consul-template do; a
   * missing parent is refused, so a typo does not grow a tree.
   */
  checkDir(): void {
    let st;
    try {
      st = statSync(this.dir);
    } catch (err) {
      if (errno(err) !== "ENOENT") throw invalid("--dir", `${this.dir} cannot be used (${errno(err)})`);
      this.create();
      st = statSync(this.dir);
    }
    if (!st.isDirectory()) throw invalid("--dir", `${this.dir} is not a directory`);
    const probe = path.join(this.dir, `..probe_${process.pid}`);
    try {
      mkdirSync(probe, { mode: 0o700 });
      rmSync(probe, { recursive: true, force: true });
    } catch (err) {
      throw invalid("--dir", `${this.dir} is not writable (${errno(err)})`);
    }
  }

  private create(): void {
    const parent = path.dirname(path.resolve(this.dir));
    try {
      mkdirSync(this.dir, { mode: 0o700 });
    } catch (err) {
      if (errno(err) === "ENOENT") throw invalid("--dir", `${this.dir} does not exist, nor does its parent ${parent}: create the parent first`);
      if (errno(err) !== "EEXIST") throw invalid("--dir", `${this.dir} does not exist and cannot be created in ${parent} (${errno(err)})`);
    }
  }

  /** The set `..data` points at, or undefined when there is none yet. */
  currentSet(): string | undefined {
    const link = path.join(this.dir, DATA_LINK);
    let st;
    try {
      st = lstatSync(link);
    } catch {
      return undefined;
    }
    if (!st.isSymbolicLink()) throw this.planted(DATA_LINK, "is not a symlink");
    const target = readlinkSync(link);
    if (!SET_NAME.test(target)) throw this.planted(DATA_LINK, "points outside the layout");
    return target;
  }

  private planted(entry: string, what: string): SecretdError {
    return new SecretdError("FAILED_PRECONDITION", `${path.join(this.dir, entry)} ${what}: not placed by secretd, refusing to write in ${this.dir}`);
  }

  /** Whether the set on disk holds exactly these files; throws on a symlink inside it. */
  private matches(set: string, files: readonly ProjectedFile[]): boolean {
    const want = new Map(files.map((f) => [f.path, f]));
    let count = 0;
    const walk = (rel: string): boolean => {
      for (const e of readdirSync(path.join(this.dir, set, rel), { withFileTypes: true })) {
        const p = rel === "" ? e.name : `${rel}/${e.name}`;
        if (e.isSymbolicLink()) throw this.planted(path.join(set, p), "is a symlink inside a set");
        if (e.isDirectory()) {
          if (!walk(p)) return false;
          continue;
        }
        const f = want.get(p);
        if (!f || !e.isFile()) return false;
        const full = path.join(this.dir, set, p);
        if ((lstatSync(full).mode & 0o777) !== f.mode || !sameBytes(readFileSync(full), f.value)) return false;
        count++;
      }
      return true;
    };
    return walk("") && count === want.size && this.topLevelLinksPresent(files);
  }

  private topLevelLinksPresent(files: readonly ProjectedFile[]): boolean {
    for (const top of topLevel(files)) {
      try {
        if (readlinkSync(path.join(this.dir, top)) !== `${DATA_LINK}/${top}`) return false;
      } catch {
        return false;
      }
    }
    return true;
  }

  /** Refuses a top-level entry in the way of a link this set needs, unless it is ours. */
  private checkTopLevel(files: readonly ProjectedFile[]): void {
    for (const top of topLevel(files)) {
      const p = path.join(this.dir, top);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (!st.isSymbolicLink()) throw this.planted(top, "exists and is not a symlink");
      if (readlinkSync(p) !== `${DATA_LINK}/${top}`) throw this.planted(top, "is a symlink that does not point through ..data");
    }
  }

  private newSetName(): string {
    const now = new Date();
    let nanos = (now.getTime() % 1000) * 1_000_000 + Number(process.hrtime.bigint() % 1_000_000n);
    if (nanos <= this.lastNanos && Math.floor(nanos / 1e6) === Math.floor(this.lastNanos / 1e6)) nanos = this.lastNanos + 1;
    this.lastNanos = nanos;
    return setName(now, nanos % 1_000_000_000);
  }

  private writeSet(files: readonly ProjectedFile[]): string {
    const modes = dirModes(files);
    let set = this.newSetName();
    for (;;) {
      try {
        mkdirSync(path.join(this.dir, set), { mode: 0o700 });
        break;
      } catch (err) {
        if (errno(err) !== "EEXIST") throw new SecretdError("UNAVAILABLE", `cannot create a set in ${this.dir} (${errno(err)})`);
        set = this.newSetName();
      }
    }
    const root = path.join(this.dir, set);
    const made = new Set<string>([""]);
    for (const f of files) {
      const segments = f.path.split("/");
      for (let i = 1; i < segments.length; i++) {
        const d = segments.slice(0, i).join("/");
        if (made.has(d)) continue;
        mkdirSync(path.join(root, d), { mode: 0o700 });
        made.add(d);
      }
      // "wx": created here or not at all, so nothing already in place is followed.
      const fd = openSync(path.join(root, f.path), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
      try {
        let off = 0;
        while (off < f.value.length) off += writeSync(fd, f.value, off, f.value.length - off);
        fchmodSync(fd, f.mode);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    // Modes last: a 0500 directory could not have been written into.
    for (const d of [...made].sort((a, b) => b.length - a.length)) {
      const full = path.join(root, d);
      const fd = openSync(full, constants.O_RDONLY | constants.O_DIRECTORY);
      try {
        fchmodSync(fd, modes.get(d) ?? 0o700);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    }
    return set;
  }

  private fsyncDir(): void {
    const fd = openSync(this.dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Writes `files` as the new set of DIR (see the file comment for the guarantees). */
  write(files: readonly ProjectedFile[]): WriteResult {
    validateSet(files);
    const old = this.currentSet();
    if (old !== undefined && this.matches(old, files)) return { changed: false, set: old };
    this.checkTopLevel(files);
    const set = this.writeSet(files);

    const tmp = path.join(this.dir, DATA_TMP);
    rmSync(tmp, { force: true });
    symlinkSync(set, tmp);
    renameSync(tmp, path.join(this.dir, DATA_LINK));

    const tops = topLevel(files);
    for (const top of tops) {
      const p = path.join(this.dir, top);
      try {
        lstatSync(p);
      } catch {
        symlinkSync(`${DATA_LINK}/${top}`, p);
      }
    }
    this.removeStale(set, tops);
    this.fsyncDir();
    return { changed: true, set };
  }

  /** Removes top-level links of the old set that the new one lacks, and old sets. */
  private removeStale(current: string, tops: ReadonlySet<string>): void {
    for (const e of readdirSync(this.dir, { withFileTypes: true })) {
      const p = path.join(this.dir, e.name);
      if (e.isSymbolicLink() && !tops.has(e.name) && !e.name.startsWith("..")) {
        if (readlinkSync(p) === `${DATA_LINK}/${e.name}`) unlinkSync(p);
      } else if (e.isDirectory() && SET_NAME.test(e.name) && e.name !== current) {
        rmSync(p, { recursive: true, force: true });
      }
    }
  }
}

function topLevel(files: readonly ProjectedFile[]): Set<string> {
  return new Set(files.map((f) => f.path.split("/")[0] ?? f.path));
}
