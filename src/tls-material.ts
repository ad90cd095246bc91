/**
 * PEM files for TLS, read and checked before they are handed to grpc-js, so a bad one is
 * refused up front with a message naming the flag (grpc-js would accept a certificate
 * with a key that doesn't match and fail every handshake later). Node's messages never
 * quote key bytes; they are trimmed of OpenSSL's error prefix.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { SecretdError, invalid } from "./errors.js";

/** A file a flag names; INVALID_ARGUMENT naming the flag when it cannot be read. */
export function readFlagFile(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new SecretdError("INVALID_ARGUMENT", `${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? "error"})`);
  }
}

function check(flag: string, build: () => unknown, problem?: string): void {
  try {
    build();
  } catch (err) {
    const why = (err as Error).message.replace(/^error:[0-9A-F]+:[^:]*::?/, "");
    throw invalid(flag, problem ?? `cannot use it for TLS: ${why}`);
  }
}

/** A CA bundle: at least one PEM certificate, all usable as trust anchors. */
export function checkCaBundle(ca: Buffer, flag: string): void {
  check(flag, () => new X509Certificate(ca), "holds no PEM certificate");
  check(flag, () => createSecureContext({ ca }));
}

/** A certificate chain and the private key of its first certificate. */
export function checkCertKeyPair(cert: Buffer, key: Buffer, certFlag: string, keyFlag: string): void {
  check(certFlag, () => new X509Certificate(cert), "holds no PEM certificate");
  check(certFlag, () => createSecureContext({ cert }));
  check(keyFlag, () => createSecureContext({ cert, key }), `does not match ${certFlag} or is not a PEM private key`);
}
