/**
 * The rotation bench (scripts/bench-rotation.mjs, #30 item 7) cannot silently measure
 * nothing: its --check mode (5 consumers, 3 rotations a phase, on the built dist/) fails
 * unless rotations whose watchers do not ack never converge, and every AFTER_ACK rotation
 * converges and reaches DONE through the bench's own acks (the sidecar's Acker, one ack
 * per delivery, each lease row recording one).
 */
import { execFile } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../scripts/bench-rotation.mjs");

function runCheck(): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SCRIPT, "--check"], { timeout: 90_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

describe("bench-rotation --check", () => {
  it("when the bench's consumers ack as the sidecar does, then each AFTER_ACK rotation converges and is DONE, and without acks none converged", { timeout: 120_000 }, async () => {
    const r = await runCheck();
    const last = r.stdout.trim().split("\n").pop() ?? "";
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(last) as {
      check: { ok: boolean; problems: string[] };
      not_acking: { converged_without_acks: boolean };
      acking: { rotations_not_done: number; to_converged: { n: number } };
      ack: { calls: number; errors: number; acked_rows: number };
    };
    expect(out.check).toEqual({ ok: true, problems: [] });
    expect(out.not_acking.converged_without_acks).toBe(false);
    expect(out.acking.rotations_not_done).toBe(0);
    expect(out.acking.to_converged.n).toBe(3);
    expect(out.ack.errors).toBe(0);
    expect(out.ack.calls).toBeGreaterThanOrEqual(15);
    expect(out.ack.acked_rows).toBe(5);
  });
});
