/**
 * `--audit-file PATH`: each audit event also appended as one JSON line, for log
 * shippers. Opened once in append mode, owner-only (0600); written once per flush.
 */
import { closeSync, fchmodSync, mkdirSync, openSync, writeSync } from "node:fs";
import path from "node:path";
import type { AuditRow } from "../storage/storage.js";

/**
 * The JSON form of one event: the AuditEvent message's camelCase fields plus the tenant.
 * `version` is absent for a call that names no version (the message's 0), and `stage`
 * for one that names no staged version (""), as in `secretd audit -o json`: one form in both.
 */
export function auditLine(e: AuditRow): string {
  return `${JSON.stringify({
    time: new Date(e.time).toISOString(),
    tenant: e.tenant,
    requestId: e.requestId,
    method: e.method,
    sub: e.sub,
    mesh: e.mesh,
    name: e.name,
    version: e.version !== 0 ? e.version : undefined,
    keys: e.keys,
    code: e.code,
    peer: e.peer,
    stage: e.stage !== "" ? e.stage : undefined,
  })}\n`;
}

export class AuditFile {
  #fd: number | undefined;

  constructor(readonly file: string) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.#fd = openSync(file, "a", 0o600);
    fchmodSync(this.#fd, 0o600);
  }

  /** Appends the events' lines in one write (synchronous: a batch is small, and ordered). */
  append(events: readonly AuditRow[]): void {
    if (this.#fd === undefined || events.length === 0) return;
    const buf = Buffer.from(events.map(auditLine).join(""), "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(this.#fd, buf, off);
  }

  close(): void {
    if (this.#fd === undefined) return;
    closeSync(this.#fd);
    this.#fd = undefined;
  }
}
