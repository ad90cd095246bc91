/**
 * Client verbs on grants: grant, revoke, list-grants. Subjects are `user:<sub>` or
 * `role:<role>`; permissions are read, project, write, admin (the server checks both).
 */
import type { Command } from "commander";
import { GrantAccessRequest, ListGrantsRequest, RevokeAccessRequest, Permission } from "../gen/secrets/v1/secrets.js";
import { withExample } from "../client/help.js";
import { expireTimeFrom, outputOption, repeatable, runClient, SCOPED, withClientOptions, withExpiryOptions } from "../client/client.js";
import { grantsTable, grantView, parsePermission, permissionName, renderDoc, type DocFormat } from "./output.js";

function registerGrant(program: Command): void {
  const cmd = program
    .command("grant")
    .description("grant a subject a permission on a secret (replacing its grant of that permission, if any); prints the grant")
    .argument("<name>", "secret name")
    .requiredOption("--subject <subject>", "user:<sub> or role:<role>")
    .requiredOption("--permission <permission>", "read, project, write or admin")
    .addOption(repeatable("--key <key>", "limit the grant to this data key (repeatable; default every key)"));
  withExpiryOptions(withClientOptions(cmd), "grant").addOption(outputOption(["yaml", "json"], "yaml"));
  withExample(cmd, "secretd grant db --mesh default --subject role:auditor --permission read --key user --ttl 168h");
  cmd.action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ subject: string; permission: string; key?: string[]; expireTime?: string; ttl?: string; output: DocFormat }>();
      const req = GrantAccessRequest.fromPartial({
        mesh: conn.mesh,
        name,
        subject: f.subject,
        permission: parsePermission(f.permission),
        keys: f.key ?? [],
        expireTime: expireTimeFrom(f),
      });
      const grant = await conn.unary(conn.client.grantAccess, req);
      const { replaced } = grant;
      // A subject holds one grant per permission: say so when this one took an old one's place.
      if (replaced) {
        const keys = replaced.keys.length === 0 ? "every key" : `keys ${replaced.keys.join(",")}`;
        const until = replaced.expireTime ? `until ${replaced.expireTime.toISOString()}` : "no expiry";
        process.stderr.write(`replaced the ${permissionName(replaced.permission)} grant of ${replaced.subject} (${keys}, ${until})\n`);
      }
      process.stdout.write(renderDoc({ ...grantView(grant), ...(replaced ? { replaced: grantView(replaced) } : {}) }, f.output));
    }, SCOPED),
  );
}

function registerRevoke(program: Command): void {
  const cmd = program
    .command("revoke")
    .description("remove a subject's grants on a secret (all of them, or the one --permission)")
    .argument("<name>", "secret name")
    .requiredOption("--subject <subject>", "user:<sub> or role:<role>")
    .option("--permission <permission>", "only the grant of this permission: read, project, write or admin");
  withExample(cmd, "secretd revoke db --mesh default --subject role:auditor");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ subject: string; permission?: string }>();
      const permission = f.permission === undefined ? Permission.PERMISSION_UNSPECIFIED : parsePermission(f.permission);
      await conn.unary(conn.client.revokeAccess, RevokeAccessRequest.fromPartial({ mesh: conn.mesh, name, subject: f.subject, permission }));
      const what = f.permission === undefined ? "every grant" : `the ${permissionName(permission)} grant`;
      process.stdout.write(`revoked ${what} of ${f.subject} on secret "${name}"\n`);
    }, SCOPED),
  );
}

function registerListGrants(program: Command): void {
  const cmd = program
    .command("list-grants")
    .description("list the grants of a secret (expired ones are marked)")
    .argument("<name>", "secret name")
    .addOption(outputOption(["table", "json", "yaml"], "table"));
  withExample(cmd, "secretd list-grants db --mesh default -o yaml");
  withClientOptions(cmd).action((name: string, _opts: unknown, self: Command) =>
    runClient(self, async (conn) => {
      const f = self.opts<{ output: DocFormat | "table" }>();
      const { grants } = await conn.unary(conn.client.listGrants, ListGrantsRequest.fromPartial({ mesh: conn.mesh, name }));
      if (f.output === "table") {
        if (grants.length === 0) process.stderr.write(`no grants on secret "${name}"\n`);
        else process.stdout.write(grantsTable(grants));
      } else {
        process.stdout.write(renderDoc({ grants: grants.map((g) => grantView(g)) }, f.output));
      }
    }, SCOPED),
  );
}

export function registerGrantsCommands(program: Command): void {
  registerGrant(program);
  registerRevoke(program);
  registerListGrants(program);
}
