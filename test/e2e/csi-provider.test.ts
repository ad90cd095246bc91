/**
 * `secretd csi-provider` as a real process (dist/main.js) on a real Unix socket, called
 * exactly as the Secrets Store CSI Driver's MountContent calls it
 * (pkg/secrets-store/provider_client.go: authority "localhost", the driver's 4 MiB
 * receive limit, attributes as nodeserver.go builds them, permission "420"), against the
 * real server verifying RS256 pod tokens of the Kubernetes claim shape as a cluster's
 * secretd does: --jwt-oidc-issuer names a local HTTP server playing the API server's
 * service-account issuer (/.well-known/openid-configuration → jwks_uri), and
 * --claims-mapping turns the token into a principal (tenant fixed, mesh from
 * kubernetes.io.namespace, roles from a binding of the namespace).
 * No value and no token may ever reach the provider's output.
 */
import { createServer, type Server as HttpServer } from "node:http";
import { chmodSync, lstatSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { exportJWK, generateKeyPair, SignJWT, type JWK, type CryptoKey } from "jose";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CSIDriverProviderClient, MountRequest, type MountResponse, type ObjectVersion, type VersionResponse } from "../../src/gen/csi/provider/v1alpha1/service.js";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { mintToken } from "../../src/auth/mint.js";
import { OIDC_COOLDOWN_MS } from "../../src/auth/oidc-key-set.js";
import { startCli, waitFor, type CliProcess } from "../helpers/cli-process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const AUDIENCE = "secretd";
/** The local issuer's URL, as its discovery document names it. */
let ISSUER = "";
const NS = "shop";
const SLOW = 60_000;
/** The driver's default --max-call-recv-msg-size. */
const DRIVER_MAX_RECV = 4 * 1024 * 1024;

let work: string;
let jwksServer: HttpServer;
let jwks: { keys: JWK[] } = { keys: [] };
let signing: { key: CryptoKey; kid: string };
let server: TestServer;
let provider: CliProcess;
let socket: string;
let owner: string;
let n = 0;
/** Every value and token handed out: none may ever show in a provider's output. */
const secrets = new Set<string>();
const running: CliProcess[] = [];

async function newKey(kid: string): Promise<{ key: CryptoKey; jwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair("RS256");
  return { key: privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } };
}

interface TokenShape {
  sub?: string;
  iss?: string;
  namespace?: string;
  roles?: string[];
  aud?: string;
  /** Seconds from now. */
  exp?: number;
  iat?: number;
}

/** A projected service-account token as the kubelet gets it from the API server's TokenRequest. */
async function podToken(t: TokenShape = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const namespace = t.namespace ?? NS;
  const claims: Record<string, unknown> = {
    "kubernetes.io": { namespace, pod: { name: "web-0", uid: "1b4e28ba-2fa1-11d2-883f-0016d3cca427" }, serviceaccount: { name: "web", uid: "6e3c6f4e-0f1d-4b7e-9a35-1d2c3b4a5f60" } },
  };
  if (t.roles) claims.roles = t.roles;
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: "RS256", kid: signing.kid, typ: "JWT" })
    .setIssuer(t.iss ?? ISSUER)
    .setSubject(t.sub ?? `system:serviceaccount:${namespace}:web`)
    .setAudience(t.aud ?? AUDIENCE)
    .setIssuedAt(now + (t.iat ?? 0))
    .setNotBefore(now + (t.iat ?? 0))
    .setExpirationTime(now + (t.exp ?? 600))
    .sign(signing.key);
  secrets.add(token);
  return token;
}

function startProvider(args: string[] = []): { p: CliProcess; socket: string } {
  const dir = mkdtempSync(path.join(work, "providers-"));
  const sock = path.join(dir, "secretd.sock");
  const p = startCli(["csi-provider", "--socket", sock, "--server", server.address, ...args], { PATH: process.env.PATH ?? "" });
  running.push(p);
  return { p, socket: sock };
}

async function serving(p: CliProcess): Promise<void> {
  await waitFor("the provider to serve", () => p.logs().some((l) => l.msg === "serving") || p.child.exitCode !== null);
  if (p.child.exitCode !== null) throw new Error(`provider exited: ${p.stderr()}`);
}

/** The driver's side: a client for <provider dir>/secretd.sock as PluginClientBuilder.Get builds it. */
function driverClient(sock: string): InstanceType<typeof CSIDriverProviderClient> {
  return new CSIDriverProviderClient(`unix:${sock}`, credentials.createInsecure(), {
    "grpc.default_authority": "localhost",
    "grpc.max_receive_message_length": DRIVER_MAX_RECV,
  });
}

interface Mount {
  token?: string;
  /** SecretProviderClass parameters. */
  params?: Record<string, string>;
  current?: ObjectVersion[];
  tokens?: Record<string, { token: string; expirationTimestamp: string }>;
  sock?: string;
}

/** MountContent: attributes as nodeserver.go builds them, permission json.Marshal(os.FileMode(0644)). */
async function mount(objects: string | undefined, m: Mount = {}): Promise<MountResponse> {
  const token = m.token ?? (await podToken());
  const params: Record<string, string> = { ...(objects !== undefined ? { objects } : {}), mesh: NS, ...m.params };
  const attributes = {
    ...params,
    secretProviderClass: "app",
    "csi.storage.k8s.io/pod.name": "web-0",
    "csi.storage.k8s.io/pod.namespace": NS,
    "csi.storage.k8s.io/pod.uid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "csi.storage.k8s.io/serviceAccount.name": "web",
    "csi.storage.k8s.io/ephemeral": "false",
    "csi.storage.k8s.io/serviceAccount.tokens": JSON.stringify(m.tokens ?? { [AUDIENCE]: { token, expirationTimestamp: new Date(Date.now() + 600_000).toISOString() } }),
  };
  const req = MountRequest.fromPartial({
    attributes: JSON.stringify(attributes),
    secrets: "null",
    targetPath: "/var/lib/kubelet/pods/1b4e28ba-2fa1-11d2-883f-0016d3cca427/volumes/kubernetes.io~csi/secrets-store-inline/mount",
    permission: "420",
    currentObjectVersion: m.current ?? [],
  });
  const client = driverClient(m.sock ?? socket);
  try {
    return await new Promise<MountResponse>((resolve, reject) => client.mount(req, (err, res) => (err ? reject(err) : resolve(res))));
  } finally {
    client.close();
  }
}

/** The code MountContent reports for an OK answer: error.code, "" when the mount succeeded. */
function codeOf(r: MountResponse): string {
  return r.error?.code ?? "";
}

function versionsOf(r: MountResponse): Record<string, string> {
  return Object.fromEntries(r.objectVersion.map((o) => [o.id, o.version]));
}

function filesOf(r: MountResponse): Record<string, { mode: string; text: string }> {
  return Object.fromEntries(r.files.map((f) => [f.path, { mode: `0${f.mode.toString(8)}`, text: Buffer.from(f.contents).toString() }]));
}

function val(s: string): string {
  secrets.add(s);
  return s;
}

async function create(name: string, data: Record<string, string>): Promise<Secret> {
  const stringData = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, val(v)]));
  return server.call<Secret>("createSecret", { mesh: NS, name, stringData }, owner);
}

async function update(name: string, data: Record<string, string>): Promise<Secret> {
  const cur = await server.call<Secret>("getSecret", { mesh: NS, name }, owner);
  const stringData = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, val(v)]));
  return server.call<Secret>("updateSecret", { mesh: NS, name, etag: cur.etag, stringData }, owner);
}

/** A fresh secret the pod's service account may project. */
async function granted(data: Record<string, string>): Promise<string> {
  const name = `s${++n}`;
  await create(name, data);
  await server.call("grantAccess", { mesh: NS, name, subject: `user:system:serviceaccount:${NS}:web`, permission: Permission.PERMISSION_PROJECT }, owner);
  return name;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(os.tmpdir(), "secretd-csi-"));
  chmodSync(work, 0o700);
  const first = await newKey("k1");
  signing = { key: first.key, kid: "k1" };
  jwks = { keys: [first.jwk] };
  jwksServer = createServer((req, res) => {
    const json = (body: unknown): void => void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (req.url === "/.well-known/openid-configuration") json({ issuer: ISSUER, jwks_uri: `${ISSUER}/openid/v1/jwks`, id_token_signing_alg_values_supported: ["RS256"] });
    else if (req.url === "/openid/v1/jwks") json(jwks);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => jwksServer.listen(0, "127.0.0.1", r));
  ISSUER = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}`;
  const hsSecret = Buffer.from("an-hs256-secret-for-the-operator-0123456789");
  const hs = path.join(work, "hs256.key");
  writeFileSync(hs, hsSecret, { mode: 0o600 });
  const mapping = path.join(work, "claims-mapping.yaml");
  writeFileSync(mapping, `issuers:\n  - issuer: ${ISSUER}\n    tenant: acme\n    meshClaim: kubernetes.io.namespace\n    bindings:\n      - namespace: ${NS}\n        roles: [workload]\n`);
  server = await startTestServer({ jwtOidcIssuer: ISSUER, jwtAudience: AUDIENCE, claimsMapping: mapping, jwtHs256SecretFile: hs });
  // The operator creates and grants with a dev token; pods come with their own.
  owner = await mintToken({ secret: hsSecret, tenant: "acme", sub: "olivia", roles: ["data-developer"], meshes: [NS], audience: AUDIENCE, ttlSec: 600 });
  secrets.add(owner);
  ({ p: provider, socket } = startProvider());
  running.splice(running.indexOf(provider), 1);
  await serving(provider);
});

afterEach(async () => {
  const stopped = running.splice(0);
  for (const p of stopped) await p.stop("SIGKILL");
  for (const p of [provider, ...stopped]) {
    for (const s of secrets) {
      expect(p.stderr()).not.toContain(s);
      expect(p.stdout()).not.toContain(s);
    }
  }
});

afterAll(async () => {
  await provider?.stop("SIGKILL");
  await server?.stop();
  await new Promise((r) => jwksServer?.close(r));
  rmSync(work, { recursive: true, force: true });
});

describe("Mount", () => {
  it("when a pod's RS256 token may project, then Mount answers the files with their modes and one version per source", async () => {
    const db = await granted({ password: "pw-Xq81", username: "app-user-Jk4" });
    const api = await granted({ key: "api-Lm20" });
    const objects = `items:\n  - name: ${db}\n    keys:\n      - key: password\n        path: db/password\n        mode: "0440"\n      - key: username\n        path: db/user\n  - ${api}\n`;
    const r = await mount(objects);
    expect(codeOf(r)).toBe("");
    expect(filesOf(r)).toEqual({
      "db/password": { mode: "0440", text: "pw-Xq81" },
      "db/user": { mode: "0644", text: "app-user-Jk4" }, // no mode in the mapping: the driver's permission
      [`${api}/key`]: { mode: "0644", text: "api-Lm20" },
    });
    const versions = versionsOf(r);
    expect(versions[`${NS}/${db}`]).toBe("1");
    expect(versions[`${NS}/${api}`]).toBe("1");
    expect(Object.keys(versions).sort()).toEqual([`${NS}/${db}`, `${NS}/${api}`, "secretd:files"].sort());
    await waitFor("the mount's log line", () => provider.logs().some((l) => l.msg === "mounted" && l.pod === `${NS}/web-0`));
  });

  it("when a secret is updated, then the next Mount answers its new version and values; an unchanged projection is answered without files", async () => {
    const name = await granted({ password: "old-Pq3" });
    const objects = `items: [${name}]`;
    const first = await mount(objects);
    expect(versionsOf(first)[`${NS}/${name}`]).toBe("1");
    // The driver's rotation reconciler sends what it holds: nothing changed, nothing sent.
    const same = await mount(objects, { current: first.objectVersion });
    expect(codeOf(same)).toBe("");
    expect(same.files).toEqual([]);
    expect(same.objectVersion).toEqual(first.objectVersion);
    await update(name, { password: "new-Zr7" });
    const second = await mount(objects, { current: first.objectVersion });
    expect(versionsOf(second)[`${NS}/${name}`]).toBe("2");
    expect(versionsOf(second)["secretd:files"]).not.toBe(versionsOf(first)["secretd:files"]);
    expect(filesOf(second)).toEqual({ [`${name}/password`]: { mode: "0644", text: "new-Zr7" } });
  });

  it("when a mapping's path escapes the volume, is absolute or appears twice, then Mount is refused with InvalidPath", async () => {
    const name = await granted({ a: "esc-a1", b: "esc-b1" });
    for (const paths of [["../etc/passwd"], ["/etc/passwd"], ["x/../../y"], ["same", "same"]]) {
      const keys = paths.map((p, i) => `      - key: ${i === 0 ? "a" : "b"}\n        path: ${p}`).join("\n");
      const r = await mount(`items:\n  - name: ${name}\n    keys:\n${keys}\n`);
      expect(codeOf(r), paths.join(",")).toBe("InvalidPath");
      expect(r.files).toEqual([]);
    }
  });

  it("when the objects parameter is missing or not a projection, then Mount is refused with InvalidAttributes", async () => {
    expect(codeOf(await mount(undefined))).toBe("InvalidAttributes");
    expect(codeOf(await mount("items: []"))).toBe("InvalidAttributes");
    expect(codeOf(await mount("items: [a]\nbogus: 1"))).toBe("InvalidAttributes");
    expect(codeOf(await mount("mesh: other\nitems: [a]"))).toBe("InvalidAttributes"); // the parameter mesh says shop
  });

  it("when the pod has no token for the audience asked for, or several and none asked for, then Mount is refused with InvalidAttributes", async () => {
    const token = await podToken();
    const at = new Date(Date.now() + 600_000).toISOString();
    expect(codeOf(await mount("items: [a]", { params: { audience: "vault" } }))).toBe("InvalidAttributes");
    expect(codeOf(await mount("items: [a]", { tokens: { a: { token, expirationTimestamp: at }, b: { token, expirationTimestamp: at } } }))).toBe("InvalidAttributes");
    expect(codeOf(await mount("items: [a]", { tokens: {} }))).toBe("InvalidAttributes");
  });

  it("when the token is expired, for another audience, another namespace or another issuer, then Mount is refused with the server's code", async () => {
    const name = await granted({ password: "ref-Yt5" });
    const objects = `items: [${name}]`;
    expect(codeOf(await mount(objects, { token: await podToken({ iat: -700, exp: -60 }) }))).toBe("Unauthenticated");
    expect(codeOf(await mount(objects, { token: await podToken({ aud: "vault" }) }))).toBe("Unauthenticated");
    expect(codeOf(await mount(objects, { token: await podToken({ namespace: "other" }) }))).toBe("PermissionDenied");
    // Another issuer (another cluster) is no issuer this server trusts.
    expect(codeOf(await mount(objects, { token: await podToken({ iss: "https://evil.example" }) }))).toBe("Unauthenticated");
    // The same projection with the pod's own token still mounts.
    expect(codeOf(await mount(objects))).toBe("");
  });

  it("when the files come to more than the driver's 4 MiB, then Mount is refused with ResponseTooLarge", async () => {
    const big = "x".repeat(900 * 1024);
    const names: string[] = [];
    for (let i = 0; i < 5; i++) names.push(await granted({ v: `${big}${i}` }));
    const r = await mount(`items: [${names.join(", ")}]`);
    expect(codeOf(r)).toBe("ResponseTooLarge");
    expect(r.files).toEqual([]);
  }, SLOW);

  it("when secretd cannot be reached, then Mount fails UNAVAILABLE, the code the driver's service config retries", async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
    const err = await mount("items: [a]", { params: { serverAddress: `127.0.0.1:${port}` } }).then(
      () => undefined,
      (e: ServiceError) => e,
    );
    expect(err?.code).toBe(status.UNAVAILABLE);
  });

  it("when the issuer rotates to a new kid, then tokens signed with it are accepted without a restart", async () => {
    const name = await granted({ password: "rot-Kw2" });
    const objects = `items: [${name}]`;
    expect(codeOf(await mount(objects))).toBe("");
    const next = await newKey("k2");
    jwks = { keys: [next.jwk] };
    signing = { key: next.key, kid: "k2" };
    // The server refetches the issuer's keys for an unknown kid once its cooldown has passed (on its clock).
    expect(codeOf(await mount(objects))).toBe("Unauthenticated");
    await server.clock.advance(OIDC_COOLDOWN_MS);
    expect(codeOf(await mount(objects))).toBe("");
  }, SLOW);
});

describe("Version", () => {
  it("when the driver asks for the version, then the provider names itself", async () => {
    const client = driverClient(socket);
    const v = await new Promise<VersionResponse>((resolve, reject) => client.version({ version: "v1alpha1" }, (e, r) => (e ? reject(e) : resolve(r))));
    client.close();
    expect(v).toMatchObject({ version: "v1alpha1", runtimeName: "secretd" });
    expect(v.runtimeVersion).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe("the socket", () => {
  it("when the provider serves, then its socket is 0600 (or --socket-mode) and it is removed on SIGTERM", async () => {
    expect(lstatSync(socket).mode & 0o777).toBe(0o600);
    const { p, socket: sock } = startProvider(["--socket-mode", "0660"]);
    await serving(p);
    expect(lstatSync(sock).isSocket()).toBe(true);
    expect(lstatSync(sock).mode & 0o777).toBe(0o660);
    expect(await p.stop("SIGTERM")).toBe(0);
    expect(() => lstatSync(sock)).toThrow(/ENOENT/);
  });

  it("when another provider serves on the socket, then a second refuses to start; a stale socket is replaced", async () => {
    const { p, socket: sock } = startProvider();
    await serving(p);
    const second = startCli(["csi-provider", "--socket", sock, "--server", server.address], { PATH: process.env.PATH ?? "" });
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toMatch(/FAILED_PRECONDITION: --socket: .* is live/);
    expect(await p.stop("SIGKILL")).toBe(137); // leaves the socket behind
    expect(lstatSync(sock).isSocket()).toBe(true);
    const third = startCli(["csi-provider", "--socket", sock, "--server", server.address], { PATH: process.env.PATH ?? "" });
    running.push(third);
    await serving(third);
    const r = await mount("items: [a]", { sock });
    expect(codeOf(r)).toBe("NotFound"); // it answers: the stale socket was replaced
  });

  it("when the socket path is not a socket, then the provider refuses to start and leaves it alone", async () => {
    const file = path.join(work, "not-a-socket");
    writeFileSync(file, "keep me");
    const p = startCli(["csi-provider", "--socket", file, "--server", server.address], { PATH: process.env.PATH ?? "" });
    expect(await p.exited).toBe(1);
    expect(p.stderr()).toMatch(/is not a socket/);
    expect(lstatSync(file).isFile()).toBe(true);
  });
});
