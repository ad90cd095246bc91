/**
 * The provider's Unix socket, where the driver looks for it
 * (`<provider dir>/secretd.sock`): the only access control on the provider API is this
 * file's mode, so it is created 0600 (the umask is held at 0177 while it is bound, so it
 * never exists wider) and then set to --socket-mode.
 *
 * Contract: a path something answers on is refused (another provider runs); a socket
 * nobody answers on is stale (a crashed provider) and replaced; anything that is not a
 * socket is never removed. On stop the socket is removed only while it is still ours
 * (same inode), so a successor's socket survives a slow predecessor's exit.
 */
import { chmodSync, lstatSync, statSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import path from "node:path";
import { ServerCredentials, type Server } from "@grpc/grpc-js";
import { SecretdError, invalid } from "../errors.js";

/** sun_path is 108 bytes on Linux, NUL included. */
const MAX_SOCKET_PATH = 107;
const PROBE_MS = 1000;

function errno(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? "error";
}

/** Whether a process accepts connections on the socket at `file`. */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path: file });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    // Accepted, or so slow that something must be holding it: both count as live.
    const timer = setTimeout(() => done(true), PROBE_MS);
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Checks the path and clears a stale socket; throws when another provider holds it. */
export async function prepareSocket(file: string): Promise<void> {
  if (Buffer.byteLength(file) > MAX_SOCKET_PATH) throw invalid("--socket", `is longer than the ${MAX_SOCKET_PATH} bytes a Unix socket path may have`);
  const dir = path.dirname(file);
  try {
    if (!statSync(dir).isDirectory()) throw invalid("--socket", `${dir} is not a directory`);
  } catch (err) {
    if (err instanceof SecretdError) throw err;
    throw invalid("--socket", `its directory ${dir} cannot be used (${errno(err)})`);
  }
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    if (errno(err) === "ENOENT") return;
    throw invalid("--socket", `${file} cannot be checked (${errno(err)})`);
  }
  if (!st.isSocket()) throw new SecretdError("FAILED_PRECONDITION", `--socket: ${file} exists and is not a socket; it is left alone`);
  if (await answers(file)) throw new SecretdError("FAILED_PRECONDITION", `--socket: ${file} is live: another provider serves on it`);
  unlinkSync(file);
}

/** Binds `server` on the socket, created 0600, then set to `mode`; returns its inode. */
export async function bindSocket(server: Server, file: string, mode: number): Promise<number> {
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${file}`, ServerCredentials.createInsecure(), (err) => (err ? reject(new SecretdError("FAILED_PRECONDITION", `--socket: cannot listen on ${file} (${err.message})`)) : resolve())),
    );
  } finally {
    process.umask(previous);
  }
  chmodSync(file, mode);
  return lstatSync(file).ino;
}

/** Removes the socket if it is still the one bound (inode `ino`). */
export function removeSocket(file: string, ino: number): void {
  try {
    if (lstatSync(file).ino === ino) unlinkSync(file);
  } catch {
    // Already gone (grpc-js's listener may have unlinked it on close).
  }
}
