/** Thin grpc-js handlers for secrets.v1.SecretService: decode, call the domain, encode. */
import type { Consumers } from "../../domain/consumers.js";
import { SecretdError } from "../../domain/errors.js";
import { projectSecrets, type ProjectionDeps } from "../../domain/projection.js";
import type { Grants } from "../../domain/grants.js";
import type { Secrets } from "../../domain/secrets.js";
import type { SecretServiceServer } from "../../gen/secrets/v1/secrets.js";
import type { WatchHub } from "../../watch/watch-hub.js";
import { unary, type CallDeps } from "./call.js";
import { toConsumerMessage, toGrantMessage, toSecretMessage } from "./convert.js";
import { watchProjectionHandler } from "./watch-projection.js";

export interface SecretServiceDeps extends CallDeps {
  readonly secrets: Secrets;
  readonly grants: Grants;
  readonly projection: ProjectionDeps;
  readonly watches: WatchHub;
  readonly consumers: Consumers;
}

export function secretServiceHandlers(deps: SecretServiceDeps): SecretServiceServer {
  const { secrets, grants } = deps;
  return {
    createSecret: unary(deps, "CreateSecret", async (req, { principal }) => toSecretMessage(await secrets.create(principal, req))),
    getSecret: unary(deps, "GetSecret", async (req, { principal }) => {
      const { secret, data } = await secrets.get(principal, req);
      return toSecretMessage(secret, data);
    }),
    listSecrets: unary(deps, "ListSecrets", async (req, { principal }) => {
      const page = await secrets.list(principal, req);
      return { secrets: page.secrets.map((s) => toSecretMessage(s)), nextPageToken: page.nextPageToken };
    }),
    deleteSecret: unary(deps, "DeleteSecret", async (req, { principal }) => {
      await secrets.delete(principal, req);
      return {};
    }),
    projectSecrets: unary(deps, "ProjectSecrets", async (req, { principal }) => projectSecrets(deps.projection, principal, req)),
    updateSecret: unary(deps, "UpdateSecret", async (req, { principal }) => toSecretMessage(await secrets.update(principal, req))),
    watchProjection: watchProjectionHandler(deps, deps.watches),
    grantAccess: unary(deps, "GrantAccess", async (req, { principal }) => toGrantMessage(await grants.grant(principal, req))),
    revokeAccess: unary(deps, "RevokeAccess", async (req, { principal }) => {
      await grants.revoke(principal, req);
      return {};
    }),
    listGrants: unary(deps, "ListGrants", async (req, { principal }) => ({
      grants: (await grants.list(principal, req)).map(toGrantMessage),
    })),
    listConsumers: unary(deps, "ListConsumers", async (req, { principal }) => {
      const page = await deps.consumers.list(principal, req);
      return { consumers: page.consumers.map(toConsumerMessage), nextPageToken: page.nextPageToken };
    }),
    listAuditEvents: unary(deps, "ListAuditEvents", async () => {
      throw new SecretdError("UNIMPLEMENTED", "ListAuditEvents is not implemented yet");
    }),
  };
}
