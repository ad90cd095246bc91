import { describe, expect, it } from "vitest";
import { auditLine } from "../../src/audit/audit-file.js";
import { auditView } from "../../src/cli/output.js";
import { retireEvent } from "../../src/domain/rotation-audit.js";
import { RotationState } from "../../src/domain/rotation-enums.js";
import type { AuditRow, RotationRow } from "../../src/storage/storage.js";

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

  it("when an event names no stage, then neither form has a stage field; with one, both carry it", () => {
    for (const stage of ["", "previous"]) {
      const line = JSON.parse(auditLine({ ...row(2), stage })) as Record<string, unknown>;
      const view = auditView({ ...row(2), stage, keys: ["k"], time: new Date(row(2).time) });
      expect("stage" in line).toBe(stage !== "");
      expect("stage" in view).toBe(stage !== "");
      expect(line.stage).toEqual(view.stage);
    }
  });
});

describe("the retirement event (#30 item 3)", () => {
  const rotation = { tenant: "acme", mesh: "m", name: "db", version: 5, previousVersion: 4 } as RotationRow;

  it("when a rotation ends, then its event names the retired version as stage previous, with a code for how it ended", () => {
    const codes = [RotationState.ROTATION_STATE_DONE, RotationState.ROTATION_STATE_TIMED_OUT, RotationState.ROTATION_STATE_FAILED].map((s) => retireEvent(rotation, s, 7).code);
    expect(codes).toEqual(["OK", "DEADLINE_EXCEEDED", "UNKNOWN"]);
    expect(retireEvent(rotation, RotationState.ROTATION_STATE_DONE, 7)).toEqual({
      tenant: "acme",
      time: 7,
      requestId: "",
      method: "RetireVersion",
      sub: "secretd:rotation",
      mesh: "m",
      name: "db",
      version: 4,
      keys: [],
      code: "OK",
      peer: "",
      stage: "previous",
    });
  });
});
