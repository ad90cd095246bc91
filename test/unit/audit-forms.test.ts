import { describe, expect, it } from "vitest";
import { auditLine } from "../../src/audit/audit-file.js";
import { auditView } from "../../src/cli/output.js";
import type { AuditRow } from "../../src/storage/storage.js";

const row = (version: number): AuditRow => ({
  tenant: "acme",
  time: Date.UTC(2026, 11, 7),
  requestId: "rid",
  method: "ListSecrets",
  sub: "alice",
  mesh: "m",
  name: "db",
  version,
  keys: ["k"],
  code: "OK",
  peer: "ipv4:127.0.0.1:1",
  stage: "",
});

describe("the audit event's JSON forms (#26.13)", () => {
  it("when an event is about no version, then neither --audit-file nor audit -o json has a version field; with one, both carry it", () => {
    for (const version of [0, 3]) {
      const line = JSON.parse(auditLine(row(version))) as Record<string, unknown>;
      const view = auditView({ ...row(version), keys: [...row(version).keys], time: new Date(row(version).time) });
      expect("version" in line).toBe(version !== 0);
      expect("version" in view).toBe(version !== 0);
      expect(line.version).toEqual(view.version);
    }
  });
});
