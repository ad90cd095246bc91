/**
 * Requests that are cheap to send but were expensive to answer (#16 items 1-4): a caller
 * must not be able to hold the one event loop, nor make the server decrypt or encode far
 * more than it answers. Each attack runs against the live server; another tenant's
 * client (the canary) must be served right after it.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status, type ServiceError } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Keyring } from "../../src/crypto/keyring.js";
import { openData, sealData } from "../../src/domain/barrier.js";
import { projectSecrets } from "../../src/domain/projection.js";
import type { Projection, Secret } from "../../src/gen/secrets/v1/secrets.js";
import type { SecretRow } from "../../src/storage/storage.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const M = "costly";
const CANARY = "canary-value-77d1";

let s: TestServer;
let developer: string;
let outsider: string;
let canaryToken: string;

beforeAll(async () => {
  s = await startTestServer();
  developer = await s.token({ tenant: "acme", sub: "dev", roles: ["data-developer"] });
  // A role-less token of another tenant: may not create anything anywhere.
  outsider = await s.token({ tenant: "evil", sub: "mallory", roles: [] });
  canaryToken = await s.token({ tenant: "other", sub: "olga", roles: ["tenant-admin"] });
  await s.call("createSecret", { mesh: M, name: "canary", stringData: { v: CANARY } }, canaryToken);
});

afterAll(async () => {
  await s?.stop();
});

async function canary(): Promise<void> {
  const got = await s.call<Secret>("getSecret", { mesh: M, name: "canary" }, canaryToken);
  expect(Buffer.from(got.data.v!).toString()).toBe(CANARY);
}

async function failure(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e) {
    return e as ServiceError;
  }
  throw new Error("expected the call to fail");
}

// ---- DER, by hand: keys no library would make ----
function tlv(tag: number, body: Buffer): Buffer {
  const n = body.length;
  const len = n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : n < 0x10000 ? Buffer.from([0x82, n >> 8, n & 0xff]) : Buffer.from([0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, body]);
}
const seq = (...xs: Buffer[]) => tlv(0x30, Buffer.concat(xs));
/** A positive INTEGER of exactly `bytes` bytes, odd and not prime-checked. */
const bigInt = (bytes: number) => {
  const b = randomBytes(bytes);
  b[0] = 0x7f;
  b[b.length - 1]! |= 1;
  return tlv(0x02, b);
};
const pem = (label: string, der: Buffer) => `-----BEGIN ${label}-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END ${label}-----\n`;
const DSA_OID = tlv(0x06, Buffer.from("2a8648ce380401", "hex"));

/** PKCS#8 DSA key whose modulus p is a huge random odd number: importing it computes g^x mod p. */
function hugeDsaKey(pBytes: number): string {
  const params = seq(bigInt(pBytes), bigInt(32), tlv(0x02, Buffer.from([2])));
  const x = tlv(0x02, Buffer.concat([Buffer.from([0x01]), randomBytes(31)]));
  return pem("PRIVATE KEY", seq(tlv(0x02, Buffer.from([0])), seq(DSA_OID, params), tlv(0x04, x)));
}

describe("item 1: TLS certificate parsing", () => {
  // ~1 MiB of BEGIN markers and no END: the old regex was quadratic in it (16.6 s).
  const markers = "-----BEGIN CERTIFICATE-----\n".repeat(Math.floor((1024 * 1024 - 1024) / 28));
  const bomb = { "tls.crt": markers, "tls.key": "x" };

  it("when a role-less token of another tenant sends the PEM bomb, then PERMISSION_DENIED before any parsing, and others are served", async () => {
    const err = await failure(s.call("createSecret", { mesh: M, name: "bomb", type: "kubernetes.io/tls", stringData: bomb }, outsider));
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(/needs one of the roles/);
    await canary();
  });

  it("when a creator sends it, then it is refused as not holding a certificate (parsed in linear time), and others are served", async () => {
    const attack = failure(s.call("createSecret", { mesh: M, name: "bomb", type: "kubernetes.io/tls", stringData: bomb }, developer));
    const served = canary();
    const err = await attack;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toBe('data["tls.crt"]: must hold a PEM certificate (-----BEGIN CERTIFICATE-----)');
    await served;
    // And a nested-BEGIN variant with one END far away is just as cheap.
    const nested = `${markers}AAAA\n-----END CERTIFICATE-----\n`;
    const err2 = await failure(s.call("createSecret", { mesh: M, name: "bomb", type: "kubernetes.io/tls", stringData: { "tls.crt": nested, "tls.key": "x" } }, developer));
    expect(err2.code).toBe(status.INVALID_ARGUMENT);
    await canary();
  });
});

describe.runIf(hasOpenssl)("item 2: TLS private key types and sizes", () => {
  let dir = "";
  let cert = "";
  let key = "";
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "secretd-costly-"));
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", path.join(dir, "k"), "-out", path.join(dir, "c"), "-days", "3", "-subj", "/CN=t"], { stdio: "ignore" });
    cert = readFileSync(path.join(dir, "c"), "utf8");
    key = readFileSync(path.join(dir, "k"), "utf8");
  });
  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  it("when tls.key is a PKCS#8 DSA key with a huge non-prime modulus, then INVALID_ARGUMENT names the accepted key types, and others are served", async () => {
    const attack = failure(s.call("createSecret", { mesh: M, name: "dsa", type: "kubernetes.io/tls", stringData: { "tls.crt": cert, "tls.key": hugeDsaKey(8 * 1024) } }, developer));
    const served = canary();
    const err = await attack;
    expect(err.code).toBe(status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/^data\["tls\.key"\]: must be an RSA \(2048-8192 bit\), EC P-256\/P-384\/P-521, Ed25519 or Ed448 private key/);
    await served;
  });

  it("when tls.key is an RSA key below 2048 bits or a PEM larger than 16 KiB, then INVALID_ARGUMENT", async () => {
    const small = execFileSync("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    for (const k of [small, `${key}${"#".repeat(16 * 1024)}`]) {
      const err = await failure(s.call("createSecret", { mesh: M, name: "weak", type: "kubernetes.io/tls", stringData: { "tls.crt": cert, "tls.key": k } }, developer));
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(/^data\["tls\.key"\]: must be an RSA/);
    }
  });

  it("when the certificate and its EC key are valid, then the secret is created", async () => {
    await s.call("createSecret", { mesh: M, name: "good-tls", type: "kubernetes.io/tls", stringData: { "tls.crt": cert, "tls.key": key } }, developer);
  });
});

describe("item 3: ProjectSecrets decrypts each source once, and counts what it decrypts", () => {
  // One ~1 MiB secret of 256 keys of 4,000 bytes each, so 256 items can each map another key.
  const KEYS = 256;
  const big = Object.fromEntries([...Array(KEYS).keys()].map((i) => [`k${i}`, randomBytes(2000).toString("hex")]));
  const items = [...Array(KEYS).keys()].map((i) => ({ name: "big", keys: [{ key: `k${i}`, env: "", path: "", mode: 0 }] }));

  beforeAll(async () => {
    await s.call("createSecret", { mesh: M, name: "big", stringData: big }, developer);
    // Nine more ~1 MiB secrets, each with one tiny key beside its bulk.
    for (let i = 0; i < 9; i++) {
      await s.call("createSecret", { mesh: M, name: `bulk-${i}`, data: { tiny: Buffer.from("t"), bulk: randomBytes(1000 * 1024) } }, developer);
    }
  });

  it("when 256 items name one ~1 MiB secret, then it is opened once: the answer holds every key, well under the cap", async () => {
    const got = await s.call<Projection>("projectSecrets", { mesh: M, items }, developer);
    expect(got.values).toHaveLength(KEYS);
    expect(got.sources).toEqual([{ mesh: M, name: "big", version: 1 }]);
    // Counted per item, 256 openings of ~1 MiB would be ~256 MiB: far past the 8 MiB cap.
    await canary();
  });

  it("when items map one byte each from nine ~1 MiB secrets, then RESOURCE_EXHAUSTED: decrypted bytes count, not just projected ones", async () => {
    const few = [...Array(9).keys()].map((i) => ({ name: `bulk-${i}`, keys: [{ key: "tiny", env: `TINY_${i}`, path: `t/${i}`, mode: 0 }] }));
    const err = await failure(s.call("projectSecrets", { mesh: M, items: few }, developer));
    expect(err.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err.details).toBe("projection sources exceed 8388608 bytes");
    // Eight of them (~8,000 KiB of ciphertext) still fit.
    const got = await s.call<Projection>("projectSecrets", { mesh: M, items: few.slice(0, 8) }, developer);
    expect(got.values.map((v) => Buffer.from(v.value).toString())).toEqual(Array(8).fill("t"));
    await canary();
  });

  it("when a projection is built over real storage, then each source's blob is decrypted exactly once, however many items name it", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-costly-"));
    const storage = new SqliteStorage(path.join(dir, "db.sqlite"));
    try {
      const keyring = new Keyring([{ id: "k1", key: randomBytes(32), created: "2026-01-01T00:00:00Z" }], "k1");
      const now = Date.now();
      const row = (name: string): SecretRow => ({
        uid: `uid-${name}`, tenant: "acme", mesh: M, name, type: "Opaque", description: "", owner: "dev",
        labels: {}, annotations: {}, immutable: false, version: 1, etag: `e-${name}`, keys: [], createTime: now, updateTime: now, expireTime: undefined,
      });
      for (const name of ["a", "b"]) {
        const data = new Map([...Array(4).keys()].map((i) => [`k${i}`, Buffer.from(`${name}${i}`)] as [string, Buffer]));
        const r = { ...row(name), keys: [...data.keys()] };
        await storage.insertSecret(r, sealData(keyring, r, 1, data, now));
      }
      const opened: string[] = [];
      const deps = {
        storage,
        keyring,
        open: (r: SecretRow, v: Parameters<typeof openData>[2]) => {
          opened.push(r.name);
          return openData(keyring, r, v);
        },
      };
      const principal = { sub: "dev", tenant: "acme", roles: ["data-developer"], meshes: undefined, exp: undefined };
      const req = {
        mesh: M,
        knownRevision: "",
        items: [..."abab".split("").entries()].flatMap(([i, name]) => [0, 1].map((j) => ({
          name, optional: false, stage: "", envPrefix: `P${i}${j}_`, keys: [{ key: `k${(i >> 1) * 2 + j}`, env: "", path: `${i}/${j}`, mode: 0 }],
        }))),
      };
      const got = await projectSecrets(deps, principal, req);
      expect(got.values).toHaveLength(8);
      expect(opened.sort()).toEqual(["a", "b"]);
    } finally {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
