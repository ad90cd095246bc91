/** A Projection's values as the files of one set: path, mode and bytes, nothing else. */
import type { Projection } from "../gen/secrets/v1/secrets.js";
import type { ProjectedFile } from "./atomic-writer.js";

export function projectedFiles(p: Projection): ProjectedFile[] {
  return p.values.map((v) => ({ path: v.path, mode: v.mode, value: v.value }));
}

/** What a log line may say about a projection: never a value. */
export function projectionSummary(p: Projection): Record<string, unknown> {
  return {
    revision: p.revision,
    files: p.values.length,
    sources: p.sources.map((s) => `${s.mesh === "" ? "" : `${s.mesh}/`}${s.name}@${s.version}`),
  };
}
