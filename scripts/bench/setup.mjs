// The setup of scripts/bench.mjs: tokens of the benchmark tenant and the filler tenants,
// the benchmark tenant's secrets seeded with the real grpc-js client (answers checked),
// and the pre-framed bodies that the load drivers send, each checked once.
import path from "node:path";
import { credentials } from "@grpc/grpc-js";
import { readHs256Secret } from "../../dist/auth/keys.js";
import { mintToken } from "../../dist/auth/mint.js";
import {
  CreateSecretRequest,
  GetSecretRequest,
  ListSecretsRequest,
  ListSecretsResponse,
  Projection,
  ProjectSecretsRequest,
  Secret,
  SecretServiceClient,
} from "../../dist/gen/secrets/v1/secrets.js";
import { connect, rawUnary } from "../bench-lib.mjs";
import { FILLER_TENANTS, LIST_SECRETS, MESH, PROJECT_VALUE_BYTES, say, SVC, VALUE_BYTES } from "./config.mjs";
import { clientCall, pool } from "./drivers.mjs";
import { startEcho } from "./process.mjs";
import { rawTarget, valueOf } from "./scenarios.mjs";

/** Mints tenant-admin tokens with the dev key of a server's data dir. */
export function minter(dataDir) {
  const secret = readHs256Secret(path.join(dataDir, "jwt-dev.key"));
  return (tenant) => mintToken({ secret, tenant, sub: `${tenant}-admin`, roles: ["tenant-admin"], ttlSec: 3 * 3600 });
}

/** Tokens: the benchmark tenant and 100 filler tenants, all tenant-admin. */
export async function makeTenants(mint) {
  const benchToken = await mint("bench");
  const tenants = [{ name: "bench", token: benchToken, prefix: "zz-fill-", filled: 0 }];
  for (let i = 0; i < FILLER_TENANTS; i++) {
    const name = `t-${String(i).padStart(3, "0")}`;
    tenants.push({ name, token: await mint(name), prefix: "fill-", filled: 0 });
  }
  return { benchToken, tenants };
}

/** Seeds the benchmark tenant with the real grpc-js client (and checks its answers). */
export async function seedBench(server, benchToken) {
  const client = new SecretServiceClient(`127.0.0.1:${server.port}`, credentials.createInsecure());
  const getValue = valueOf(VALUE_BYTES, 1);
  const seeds = [{ name: "get-1k", data: { value: getValue } }];
  for (let i = 0; i < 5; i++) seeds.push({ name: `proj-${i}`, data: { user: valueOf(PROJECT_VALUE_BYTES, 10 + i), password: valueOf(PROJECT_VALUE_BYTES, 20 + i) } });
  for (let i = 0; i < LIST_SECRETS; i++) seeds.push({ name: `list-${String(i).padStart(4, "0")}`, data: { value: valueOf(64, i) }, labels: { app: "web", tier: String(i % 3) } });
  await pool(seeds, 16, (s) => clientCall(client, "createSecret", CreateSecretRequest.fromPartial({ mesh: MESH, ...s }), benchToken));

  const getReq = GetSecretRequest.fromPartial({ mesh: MESH, name: "get-1k" });
  const projReq = ProjectSecretsRequest.fromPartial({ mesh: MESH, items: Array.from({ length: 5 }, (_, i) => ({ name: `proj-${i}`, envPrefix: `S${i}_` })) });
  const listReq = ListSecretsRequest.fromPartial({ mesh: MESH, pageSize: 100 });
  const g = await clientCall(client, "getSecret", getReq, benchToken);
  if (!Buffer.from(g.data.value ?? []).equals(getValue)) throw new Error("GetSecret (real client) returned the wrong value");
  const pr = await clientCall(client, "projectSecrets", projReq, benchToken);
  if (pr.values.length !== 10) throw new Error(`ProjectSecrets (real client) returned ${pr.values.length} values, expected 10`);
  const l = await clientCall(client, "listSecrets", listReq, benchToken);
  if (l.secrets.length !== 100 || l.nextPageToken === "") throw new Error(`ListSecrets (real client) returned ${l.secrets.length} secrets`);
  client.close();
  say(`seeded tenant "bench": 1 × 1 KiB secret, 5 × 2 keys × ${PROJECT_VALUE_BYTES} B for ProjectSecrets, ${LIST_SECRETS} small secrets for ListSecrets; real-client answers checked`);
  return { getValue, seeded: seeds.length, requests: { getReq, projReq, listReq } };
}

/**
 * Pre-framed bodies, each checked once with a raw HTTP/2 call: grpc-status 0, decodable
 * answer, and the exact response size h2load must then see for every call.
 */
export async function preframedTargets(server, token, { getReq, projReq, listReq }, getValue) {
  const target = (name, method, msgBytes, check) => rawTarget(name, server.port, `${SVC}/${method}`, token, msgBytes, check);
  return {
    get: await target("get", "GetSecret", GetSecretRequest.encode(getReq).finish(), (m) => {
      if (!Buffer.from(Secret.decode(m).data.value ?? []).equals(getValue)) throw new Error("GetSecret pre-check: wrong value");
    }),
    project: await target("project", "ProjectSecrets", ProjectSecretsRequest.encode(projReq).finish(), (m) => {
      if (Projection.decode(m).values.length !== 10) throw new Error("ProjectSecrets pre-check: not 10 values");
    }),
    list: await target("list", "ListSecrets", ListSecretsRequest.encode(listReq).finish(), (m) => {
      if (ListSecretsResponse.decode(m).secrets.length !== 100) throw new Error("ListSecrets pre-check: not 100 secrets");
    }),
  };
}

/** The baseline: a bare grpc-js echo with GetSecret's response size, sent GetSecret's body (targets.echo). */
export async function startEchoTarget(targets) {
  const echo = await startEcho(targets.get.responseMessageBytes);
  const s = await connect(echo.port);
  const r = await rawUnary(s, "/bench.v1.Echo/Echo", undefined, targets.get.body);
  s.close();
  if (r.status !== 0 || r.body.length !== targets.get.expectBytes) throw new Error(`echo pre-check failed: status ${r.status}, ${r.body.length} bytes`);
  targets.echo = { port: echo.port, path: "/bench.v1.Echo/Echo", token: undefined, body: targets.get.body, bodyFile: targets.get.bodyFile, expectBytes: r.body.length };
  return echo;
}
