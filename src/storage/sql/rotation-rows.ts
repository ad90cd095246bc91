/**
 * The rotations table both SQL back-ends store (#30), its record as the drivers hand it
 * back, and the mapping to RotationRow (integers as numbers or BIGINT strings, booleans
 * as 0/1 or booleans, as rows.ts does for the other tables).
 */
import type { RotationRow } from "../storage.js";
import { num, type Int } from "./rows.js";

export interface RotationRecord {
  secret_uid: string;
  tenant: string;
  mesh: string;
  name: string;
  rotator: string;
  version: Int;
  previous_version: Int;
  retire: number;
  state: number;
  started: Int;
  deadline: Int;
  finished: Int | null;
  previous_readable: number | boolean;
  detail: string;
  driver: string;
  driver_expire: Int;
}

export const ROTATION_COLUMNS = "secret_uid, tenant, mesh, name, rotator, version, previous_version, retire, state, started, deadline, finished, previous_readable, detail, driver, driver_expire";

/** The rotation's bind values, in ROTATION_COLUMNS order. */
export function rotationValues(r: RotationRow, readable: (b: boolean) => number | boolean): unknown[] {
  return [r.secretUid, r.tenant, r.mesh, r.name, r.rotator, r.version, r.previousVersion, r.retire, r.state, r.started, r.deadline, r.finished ?? null, readable(r.previousReadable), r.detail, r.driver, r.driverExpire];
}

export function toRotation(r: RotationRecord): RotationRow {
  return {
    secretUid: r.secret_uid,
    tenant: r.tenant,
    mesh: r.mesh,
    name: r.name,
    rotator: r.rotator,
    version: num(r.version),
    previousVersion: num(r.previous_version),
    retire: r.retire,
    state: r.state,
    started: num(r.started),
    deadline: num(r.deadline),
    finished: r.finished === null ? undefined : num(r.finished),
    previousReadable: r.previous_readable === true || r.previous_readable === 1,
    detail: r.detail,
    driver: r.driver,
    driverExpire: num(r.driver_expire),
  };
}
