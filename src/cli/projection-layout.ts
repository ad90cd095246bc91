/**
 * `secretd project --dry-run`: what a projection would lay out (secret, key, env, path,
 * mode, size, source versions, revision), without a single value.
 */
import type { Projection } from "../gen/secrets/v1/secrets.js";
import { renderTable } from "./output.js";

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

function sourceName(s: { mesh: string; name: string; version: number }): string {
  return `${s.mesh === "" ? "" : `${s.mesh}/`}${s.name}@${s.version}`;
}

export function projectionLayoutView(p: Projection): Record<string, unknown> {
  return {
    revision: p.revision,
    sources: p.sources.map((s) => ({ mesh: s.mesh, name: s.name, version: s.version })),
    values: p.values.map((v) => ({ secret: v.secret, key: v.key, env: v.env, path: v.path, mode: octal(v.mode), size: v.value.length })),
  };
}

export function projectionLayoutTable(p: Projection): string {
  const table = renderTable(
    ["SECRET", "KEY", "ENV", "PATH", "MODE", "SIZE"],
    p.values.map((v) => [v.secret, v.key, v.env, v.path, octal(v.mode), String(v.value.length)]),
  );
  return `${table}\nsources:  ${p.sources.map(sourceName).join(", ") || "-"}\nrevision: ${p.revision}\n`;
}
