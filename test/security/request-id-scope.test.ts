/**
 * #16 item 11: a CreateSecret request_id belongs to its caller (tenant, sub). A caller
 * limited to mesh `dev` must neither learn which ids another user used in `prod` (the
 * "already used" answer was an oracle) nor pre-claim an id another user's CI will use
 * (which made that user's create fail).
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Secret } from "../../src/gen/secrets/v1/secrets.js";
import { codeOf, startTestServer, type TestServer } from "../helpers/server.js";

let s: TestServer;
let ci: string;
let intruder: string;

beforeAll(async () => {
  s = await startTestServer();
  ci = await s.token({ tenant: "acme", sub: "ci-bot", roles: ["data-developer"], meshes: ["prod"] });
  intruder = await s.token({ tenant: "acme", sub: "mallory", roles: ["data-developer"], meshes: ["dev"] });
});

afterAll(async () => {
  await s?.stop();
});

describe("request_id scoped to the caller", () => {
  it("when another caller pre-claims an id in its own mesh, then the owner's create with that id still creates its secret", async () => {
    await s.call<Secret>("createSecret", { mesh: "dev", name: "squat", stringData: { k: "x" }, requestId: "deploy-1234" }, intruder);
    const made = await s.call<Secret>("createSecret", { mesh: "prod", name: "db-password", stringData: { pw: "s3cr3t" }, requestId: "deploy-1234" }, ci);
    expect(made.name).toBe("db-password");
    expect(made.mesh).toBe("prod");
    // And the retry of each caller still replays its own secret.
    const retried = await s.call<Secret>("createSecret", { mesh: "prod", name: "db-password", stringData: { pw: "s3cr3t" }, requestId: "deploy-1234" }, ci);
    expect(retried.uid).toBe(made.uid);
  });

  it("when a caller probes an id another caller used, then the answer is the same as for a fresh id (no oracle)", async () => {
    await s.call<Secret>("createSecret", { mesh: "prod", name: "api-key", stringData: { k: "v" }, requestId: "release-77" }, ci);
    const probe = await s.call<Secret>("createSecret", { mesh: "dev", name: "probe-a", stringData: { k: "x" }, requestId: "release-77" }, intruder);
    const fresh = await s.call<Secret>("createSecret", { mesh: "dev", name: "probe-b", stringData: { k: "x" }, requestId: "never-used-anywhere" }, intruder);
    expect(probe.name).toBe("probe-a");
    expect(fresh.name).toBe("probe-b");
  });

  it("when the same caller reuses its own id for a different request, then it is still refused", async () => {
    await s.call<Secret>("createSecret", { mesh: "prod", name: "one", stringData: { k: "v" }, requestId: "own-id" }, ci);
    expect(await codeOf(s.call("createSecret", { mesh: "prod", name: "two", stringData: { k: "v" }, requestId: "own-id" }, ci))).toBe(status.INVALID_ARGUMENT);
  });
});
