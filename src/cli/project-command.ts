/**
 * `secretd project --projection FILE.yaml`: one ProjectSecrets call, printed as
 * shell-quoted NAME=value lines (for `eval`) or as a JSON/YAML document with the
 * sources and revision. The file format lives in projection-file.ts.
 */
import type { Command } from "commander";
import { envLines, renderDoc, projectionView, type DocFormat } from "./output.js";
import { outputOption, runClient, withClientOptions } from "../client/client.js";
import { withExample } from "../client/help.js";
import { readProjectionFile } from "../client/projection-file.js";
import { projectionLayoutTable, projectionLayoutView } from "./projection-layout.js";
import { checkedEnv, envCandidates } from "../client/projected-env.js";

export function registerProject(program: Command): void {
  const cmd = program
    .command("project")
    .description("project values of several secrets from one snapshot, as env lines or a document")
    .requiredOption("--projection <file>", "projection file (YAML mirroring ProjectSecretsRequest: mesh, items)")
    .option("--dry-run", "print the layout (secret, key, env, path, mode, size, versions, revision) without any value")
    .addOption(outputOption(["env", "json", "yaml"], "env", "output format (with --dry-run, env prints a table)"));
  withExample(cmd, 'eval "$(secretd project --projection app.yaml)"', "secretd project --projection app.yaml --dry-run");
  withClientOptions(cmd).action((_opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ projection: string; output: DocFormat | "env"; dryRun?: boolean }>();
      const req = readProjectionFile(f.projection, conn.meshGiven ? { mesh: conn.mesh } : {});
      const projection = await conn.unary(conn.client.projectSecrets, req);
      if (f.dryRun) {
        process.stdout.write(f.output === "env" ? projectionLayoutTable(projection) : renderDoc(projectionLayoutView(projection), f.output));
        return;
      }
      process.stdout.write(f.output === "env" ? envLines(checkedEnv(envCandidates(req, projection), { value: " (use --output json)" })) : renderDoc(projectionView(projection), f.output));
    }),
  );
}
