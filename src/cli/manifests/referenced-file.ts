/**
 * Reads a file a manifest names (DataOS `secret.files`), treating the manifest as
 * untrusted: the path must be relative, with no `..` part, and must resolve (symlinks
 * followed, realpath) to a regular file inside the manifest's own directory; its size is
 * checked on the open descriptor before a byte is read, against what the secret may
 * still hold (SPEC §5: 1 MiB in all). A refusal says why; it never reads the file.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync } from "node:fs";
import path from "node:path";

export class ReferencedFileError extends Error {}

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "error";
}

/** The real path of `rel` under `baseDir`, or a ReferencedFileError saying why not. */
function confined(baseDir: string, rel: string): string {
  if (rel === "") throw new ReferencedFileError("is empty");
  if (path.isAbsolute(rel) || path.win32.isAbsolute(rel)) throw new ReferencedFileError("must be a path relative to the manifest's directory, not an absolute one");
  if (rel.split(/[\\/]/).includes("..")) throw new ReferencedFileError("must not contain a '..' part: only files inside the manifest's directory are read");
  let base: string;
  let real: string;
  try {
    base = realpathSync(baseDir);
    real = realpathSync(path.resolve(base, rel));
  } catch (err) {
    throw new ReferencedFileError(`cannot read it (${errno(err)})`);
  }
  const inside = path.relative(base, real);
  if (inside.startsWith(`..${path.sep}`) || inside === ".." || path.isAbsolute(inside)) {
    throw new ReferencedFileError("leads outside the manifest's directory (through a symlink): only files inside it are read");
  }
  return real;
}

/** The bytes of the file; refused unless it is a regular file of at most `maxBytes`. */
export function readReferencedFile(baseDir: string, rel: string, maxBytes: number): Buffer {
  const real = confined(baseDir, rel);
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the real path has no last symlink.
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    throw new ReferencedFileError(`cannot read it (${errno(err)})`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new ReferencedFileError("is not a regular file");
    if (st.size > maxBytes) throw new ReferencedFileError(`is ${st.size} bytes, more than the ${maxBytes} bytes the secret may still hold (1 MiB in all)`);
    // One byte past the size fstat gave tells a file that grew since.
    const buf = Buffer.alloc(st.size + 1);
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, null);
      if (got === 0) break;
      n += got;
    }
    if (n > st.size) throw new ReferencedFileError("grew while it was read");
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof ReferencedFileError) throw err;
    throw new ReferencedFileError(`cannot read it (${errno(err)})`);
  } finally {
    closeSync(fd);
  }
}
