/** A Projection's values as the files of one set: path, mode and bytes, nothing else. */
import { SecretdError } from "../errors.js";
import type { Projection, ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import { validateFilePath, type ProjectedFile } from "./atomic-writer.js";

/**
 * The paths a projection file gives, checked as the writer will check them, before the
 * server is asked: a path escaping DIR is the file's mistake (exit 2), not a refusal.
 * `where` names the projection in the message: `projection file app.yaml`, `attributes.objects`.
 */
export function checkProjectionPaths(request: ProjectSecretsRequest, where: string): void {
  request.items.forEach((item, i) =>
    item.keys.forEach((k, j) => {
      if (k.path === "") return;
      try {
        validateFilePath(k.path);
      } catch (err) {
        if (err instanceof SecretdError) throw new SecretdError(err.code, `${where}: items[${i}].keys[${j}].${err.message}`);
        throw err;
      }
    }),
  );
}

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
