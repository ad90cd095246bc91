/** Thin grpc-js handlers for secrets.v1.SecretService: decode, call the domain, encode. */
import type { AuditPage } from "../../domain/audit-events.js";
import type { Acks } from "../../domain/acks.js";
import type { Consumers } from "../../domain/consumers.js";
import type { Rollouts } from "../../domain/rollout.js";
import type { ProjectionDeps } from "../../domain/projection.js";
import type { Grants } from "../../domain/grants.js";
import type { Secrets } from "../../domain/secrets.js";
import type { Principal } from "../../domain/principal.js";
import type { ListAuditEventsRequest, Projection, Secret, SecretServiceServer } from "../../gen/secrets/v1/secrets.js";
import type { WatchHub } from "../../watch/watch-hub.js";
import {
  auditAck,
  auditCreate,
  auditDelete,
  auditGet,
  auditGrant,
  auditList,
  auditListConsumers,
  auditListGrants,
  auditProject,
  auditRevoke,
  auditUpdate,
  auditGetRollout,
  auditRotate,
} from "./audit-targets.js";
import { unary, type CallDeps } from "./call.js";
import { answerGet, answerProjection, type AnswerDeps, type Answers } from "./answers.js";
import { levelOf, toAuditEventMessage, toConsumerMessage, toGrantMessage, toRolloutMessage, toSecretMessage } from "./convert.js";
import type { Rotations } from "../../domain/rotations.js";
import type { AckAnswer } from "./audit-targets.js";
import type { WatchCall } from "./watch-projection.js";

export interface SecretServiceDeps extends CallDeps {
  readonly secrets: Secrets;
  readonly grants: Grants;
  readonly projection: ProjectionDeps;
  /** Encoded GetSecret and ProjectSecrets answers kept across calls (answers.ts); none when absent. */
  readonly answers?: Answers | undefined;
  readonly watches: WatchHub;
  readonly consumers: Consumers;
  readonly rotations: Rotations;
  readonly acks: Acks;
  readonly rollouts: Rollouts;
  /** ListAuditEvents' use case (audit-events.ts over the trail's storage). */
  readonly listAuditEvents: (p: Principal, req: ListAuditEventsRequest) => Promise<AuditPage>;
}

/** `watch` serves WatchProjection (watch-projection.ts): grpc-js's calls here, node:http2's through the stream router. */
export function secretServiceHandlers(deps: SecretServiceDeps, watch: (call: WatchCall) => void): SecretServiceServer {
  const { secrets, grants } = deps;
  const now = deps.projection.now;
  const answerDeps: AnswerDeps = { secrets, projection: deps.projection, keyring: deps.projection.keyring, ...(now ? { now } : {}) };
  return {
    createSecret: unary(deps, "CreateSecret", async (req, { principal }) => toSecretMessage(await secrets.create(principal, req), undefined, "current"), auditCreate),
    getSecret: unary(
      deps,
      "GetSecret",
      // An EncodedAnswer travels as the message it encodes: only the serializer and the audit look at it, and both know it.
      async (req, { principal }) => (await answerGet(answerDeps, deps.answers, principal, req)) as Secret,
      auditGet,
    ),
    listSecrets: unary(
      deps,
      "ListSecrets",
      async (req, { principal }) => {
        const page = await secrets.list(principal, req);
        return { secrets: page.secrets.map((s) => toSecretMessage(s, undefined, "current")), nextPageToken: page.nextPageToken };
      },
      auditList,
    ),
    deleteSecret: unary(
      deps,
      "DeleteSecret",
      async (req, { principal }) => {
        await secrets.delete(principal, req);
        return {};
      },
      auditDelete,
    ),
    // An EncodedAnswer again (see GetSecret).
    projectSecrets: unary(deps, "ProjectSecrets", async (req, { principal }) => (await answerProjection(answerDeps, deps.answers, principal, req)) as Projection, auditProject),
    updateSecret: unary(deps, "UpdateSecret", async (req, { principal }) => toSecretMessage(await secrets.update(principal, req), undefined, "current"), auditUpdate),
    // Audited like ProjectSecrets, once per stream (watch-projection.ts).
    watchProjection: watch,
    grantAccess: unary(deps, "GrantAccess", async (req, { principal }) => toGrantMessage(await grants.grant(principal, { ...req, level: levelOf(req.permission) })), auditGrant),
    revokeAccess: unary(
      deps,
      "RevokeAccess",
      async (req, { principal }) => {
        await grants.revoke(principal, { ...req, level: levelOf(req.permission) });
        return {};
      },
      auditRevoke,
    ),
    listGrants: unary(
      deps,
      "ListGrants",
      async (req, { principal }) => ({ grants: (await grants.list(principal, req)).map(toGrantMessage) }),
      auditListGrants,
    ),
    listConsumers: unary(
      deps,
      "ListConsumers",
      async (req, { principal }) => {
        const page = await deps.consumers.list(principal, req);
        return { consumers: page.consumers.map(toConsumerMessage), nextPageToken: page.nextPageToken };
      },
      auditListConsumers,
    ),
    // Reading the trail is not itself a secret or grant access, so it records no event.
    listAuditEvents: unary(deps, "ListAuditEvents", async (req, { principal }) => {
      const page = await deps.listAuditEvents(principal, req);
      return { events: page.events.map(toAuditEventMessage), nextPageToken: page.nextPageToken };
    }),
    ackProjection: unary(
      deps,
      "AckProjection",
      async (req, { principal }): Promise<AckAnswer> => ({ acked: await deps.acks.ack(principal, req) }),
      auditAck,
    ),
    getRollout: unary(deps, "GetRollout", async (req, { principal }) => toRolloutMessage(await deps.rollouts.get(principal, req)), auditGetRollout),
    rotateSecret: unary(deps, "RotateSecret", async (req, { principal }) => toRolloutMessage(await deps.rotations.rotate(principal, req)), auditRotate),
  };
}
