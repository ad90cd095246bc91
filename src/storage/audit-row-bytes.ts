/**
 * What one stored audit event counts against `--audit-max-bytes`: the UTF-8 bytes of its
 * text fields (keys as the JSON stored), plus a fixed share for its integers and row
 * header. Back-ends store it with the event and keep the sum, so size-bounded retention
 * never scans the table. It is the trail's own data: the database's indexes and free
 * pages come on top of it.
 */
import type { AuditRow } from "./storage.js";

export const AUDIT_ROW_OVERHEAD = 64;

export function auditKeysJson(keys: readonly string[]): string {
  return keys.length === 0 ? "[]" : JSON.stringify(keys);
}

export function auditRowBytes(e: AuditRow, keysJson: string): number {
  return (
    AUDIT_ROW_OVERHEAD +
    Buffer.byteLength(e.tenant) +
    Buffer.byteLength(e.requestId) +
    Buffer.byteLength(e.method) +
    Buffer.byteLength(e.sub) +
    Buffer.byteLength(e.mesh) +
    Buffer.byteLength(e.name) +
    Buffer.byteLength(keysJson) +
    Buffer.byteLength(e.code) +
    Buffer.byteLength(e.peer) +
    Buffer.byteLength(e.stage)
  );
}
