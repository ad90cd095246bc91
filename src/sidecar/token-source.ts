/**
 * Where the sidecar's bearer token comes from. A token file is read again on every
 * connect and polled for changes, since workload tokens are rotated in place (Kubernetes
 * swaps a projected token file through its own `..data` link, so the path is stat'ed,
 * not its inode). The token is a credential: it is never logged or put in a message.
 */
import { readFileSync, unwatchFile, watchFile } from "node:fs";
import { SecretdError, invalid } from "../errors.js";

/** A token must be a single header-safe word; grpc-js would echo a bad value in its error. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const POLL_MS = 1000;

export interface TokenSource {
  /** The token to use now; throws a SecretdError (naming the file, never the content). */
  read(): string;
  /** Calls `onChange` when the token may have changed; returns a function that stops watching. */
  watch(onChange: () => void): () => void;
}

function checked(token: string, what: string): string {
  if (token === "") throw invalid(what, "is empty");
  if (!TOKEN_CHARS.test(token)) throw invalid(what, "holds characters a bearer token cannot hold (spaces, control or non-ASCII)");
  return token;
}

export function staticToken(token: string): TokenSource {
  const t = checked(token.trim(), "token");
  return { read: () => t, watch: () => () => undefined };
}

export function tokenFile(file: string): TokenSource {
  const read = (): string => {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new SecretdError("INVALID_ARGUMENT", `--token-file: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? "error"}`);
    }
    return checked(text.trim(), `--token-file ${file}`);
  };
  return {
    read,
    watch(onChange) {
      // Any change of the file's stat: the caller compares the content with the token it uses.
      const listener = (): void => onChange();
      watchFile(file, { interval: POLL_MS, persistent: false }, listener);
      return () => unwatchFile(file, listener);
    },
  };
}
