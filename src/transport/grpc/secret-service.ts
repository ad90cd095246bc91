/** Thin grpc-js handlers for secrets.v1.SecretService: decode, call the domain, encode. */
import type { handleServerStreamingCall } from "@grpc/grpc-js";
import { SecretdError } from "../../domain/errors.js";
import { projectSecrets, type ProjectionDeps } from "../../domain/projection.js";
import type { Grants } from "../../domain/grants.js";
import type { Secrets } from "../../domain/secrets.js";
import type { ProjectSecretsRequest, Projection, SecretServiceServer } from "../../gen/secrets/v1/secrets.js";
import { authenticate, unary, type CallDeps } from "./call.js";
import { toGrantMessage, toSecretMessage } from "./convert.js";
import { toStatus } from "./status.js";

export interface SecretServiceDeps extends CallDeps {
  readonly secrets: Secrets;
  readonly grants: Grants;
  readonly projection: ProjectionDeps;
}

function watchUnimplemented(deps: CallDeps): handleServerStreamingCall<ProjectSecretsRequest, Projection> {
  return (call) => {
    authenticate(deps.verifier, call.metadata)
      .then(() => {
        throw new SecretdError("UNIMPLEMENTED", "WatchProjection is not implemented yet");
      })
      .catch((err: unknown) => call.emit("error", toStatus(err, "")));
  };
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
    watchProjection: watchUnimplemented(deps),
    grantAccess: unary(deps, "GrantAccess", async (req, { principal }) => toGrantMessage(await grants.grant(principal, req))),
    revokeAccess: unary(deps, "RevokeAccess", async (req, { principal }) => {
      await grants.revoke(principal, req);
      return {};
    }),
    listGrants: unary(deps, "ListGrants", async (req, { principal }) => ({
      grants: (await grants.list(principal, req)).map(toGrantMessage),
    })),
    listConsumers: unary(deps, "ListConsumers", async () => {
      throw new SecretdError("UNIMPLEMENTED", "ListConsumers is not implemented yet");
    }),
    listAuditEvents: unary(deps, "ListAuditEvents", async () => {
      throw new SecretdError("UNIMPLEMENTED", "ListAuditEvents is not implemented yet");
    }),
  };
}
