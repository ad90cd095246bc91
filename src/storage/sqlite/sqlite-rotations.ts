/** The rotations table's statements on SQLite (#30); SqliteStorage runs them in its own transactions. */
import type Database from "better-sqlite3";
import { ROTATION_COLUMNS, type RotationRecord } from "../sql/rotation-rows.js";

const ACTIVE = "state IN (1, 2, 6)";
/** Past the rotator's step (a PENDING rotation is promoted or discarded, never finished). */
const PROMOTED = "state IN (1, 2)";

export function rotationStatements(db: Database.Database) {
  return {
    insert: db.prepare(`INSERT INTO rotations (${ROTATION_COLUMNS}) VALUES (${ROTATION_COLUMNS.split(", ").map(() => "?").join(", ")})`),
    active: db.prepare<[string], RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = ? AND ${ACTIVE}`),
    read: db.prepare<[string, number], RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = ? AND version = ?`),
    latest: db.prepare<[string], RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE secret_uid = ? ORDER BY version DESC LIMIT 1`),
    listActive: db.prepare<[number], RotationRecord>(`SELECT ${ROTATION_COLUMNS} FROM rotations WHERE ${ACTIVE} ORDER BY started LIMIT ?`),
    readablePrevious: db.prepare<[string], { version: number; previous_version: number }>("SELECT version, previous_version FROM rotations WHERE secret_uid = ? AND previous_readable = 1"),
    unmarkPrevious: db.prepare("UPDATE rotations SET previous_readable = 0 WHERE secret_uid = ? AND version = ?"),
    destroyVersion: db.prepare("DELETE FROM secret_versions WHERE uid = ? AND version = ?"),
    claim: db.prepare(
      `UPDATE rotations SET driver = @driver, driver_expire = @expire WHERE secret_uid = @uid AND version = @version AND ${ACTIVE}
         AND (driver = @driver OR driver = '' OR driver_expire <= @now)`,
    ),
    finish: db.prepare(
      `UPDATE rotations SET state = @state, finished = @finished, detail = @detail, driver = '', driver_expire = 0,
         previous_readable = CASE WHEN @retire = 1 THEN 0 ELSE previous_readable END
       WHERE secret_uid = @uid AND version = @version AND driver = @driver AND driver <> '' AND ${PROMOTED}`,
    ),
    previousOf: db.prepare<[string, number], { previous_version: number }>("SELECT previous_version FROM rotations WHERE secret_uid = ? AND version = ?"),
    release: db.prepare("UPDATE rotations SET driver_expire = 0 WHERE driver = ?"),
    /** A finished record of the version number a new write-ahead rotation takes (a discarded attempt's) gives way to it. */
    dropFinished: db.prepare(`DELETE FROM rotations WHERE secret_uid = ? AND version = ? AND NOT ${ACTIVE}`),
    secretHead: db.prepare<[string], { etag: string; version: number }>("SELECT etag, version FROM secrets WHERE uid = ?"),
    promote: db.prepare(
      `UPDATE rotations SET state = @state, deadline = @deadline, finished = @finished, previous_readable = @readable, detail = @detail,
         driver = @driver, driver_expire = @expire WHERE secret_uid = @uid AND version = @version AND state = 6`,
    ),
    discard: db.prepare("UPDATE rotations SET state = 5, finished = @finished, detail = @detail, driver = '', driver_expire = 0 WHERE secret_uid = @uid AND version = @version AND state = 6"),
    note: db.prepare("UPDATE rotations SET detail = @detail WHERE secret_uid = @uid AND version = @version AND state = 6"),
    identity: db.prepare<[string], { uid: string; tenant: string; mesh: string; name: string }>("SELECT uid, tenant, mesh, name FROM secrets WHERE uid = ?"),
  };
}
