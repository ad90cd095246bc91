/** `secretd consumers NAME`: the live watches of one secret (who would break if it were deleted). */
import type { Command } from "commander";
import { ListConsumersRequest, type Consumer } from "../gen/secrets/v1/secrets.js";
import { outputOption, runClient, withClientOptions } from "../client/client.js";
import { withExample } from "../client/help.js";
import { consumersTable, consumerView, renderDoc, type DocFormat } from "./output.js";

export function registerConsumers(program: Command): void {
  const cmd = program
    .command("consumers")
    .description("list the live consumers (open watches) of a secret: owner, ADMIN holders and tenant-admins")
    .argument("<name>", "secret name")
    .addOption(outputOption(["table", "json", "yaml"], "table"));
  withExample(cmd, "secretd consumers db --mesh default");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ output: DocFormat | "table" }>();
      const consumers: Consumer[] = [];
      let pageToken = "";
      do {
        const page = await conn.unary(conn.client.listConsumers, ListConsumersRequest.fromPartial({ mesh: conn.mesh, name, pageToken }));
        consumers.push(...page.consumers);
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      if (f.output === "table") {
        if (consumers.length === 0) process.stderr.write(`no live consumers of secret "${name}"\n`);
        else process.stdout.write(consumersTable(consumers));
      } else {
        process.stdout.write(renderDoc({ consumers: consumers.map(consumerView) }, f.output));
      }
    }),
  );
}
