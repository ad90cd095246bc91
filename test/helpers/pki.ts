/** A throw-away PKI made with the openssl binary: a CA, a server and a client certificate. */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

export interface Pki {
  readonly dir: string;
  /** Path of a file of the PKI: ca.crt, server.crt/.key, client.crt/.key, other.key (matches nothing). */
  file(name: string): string;
}

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

export function makePki(): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-pki-"));
  const f = (n: string): string => path.join(dir, n);
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...ec, "-keyout", f("ca.key"), "-out", f("ca.crt"), "-days", "2", "-subj", "/CN=test-ca");
  writeFileSync(f("san.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  for (const who of ["server", "client"]) {
    openssl("req", ...ec, "-keyout", f(`${who}.key`), "-out", f(`${who}.csr`), "-subj", `/CN=${who}`);
    openssl("x509", "-req", "-in", f(`${who}.csr`), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-out", f(`${who}.crt`), "-days", "2", "-extfile", f("san.ext"));
  }
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f("other.key"));
  return { dir, file: f };
}
