/**
 * `secretd sidecar` as a real process (dist/main.js) against the real server: the
 * kubelet layout on disk, what a reader sees during updates, what happens when the
 * server goes away and comes back, when access is revoked and when the token expires.
 * Every run checks that neither a value nor the token reaches the sidecar's output.
 */
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { readFile, readlink } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Permission, type Secret } from "../../src/gen/secrets/v1/secrets.js";
import { runCli, startCli, waitFor, WITHOUT_DAC_OVERRIDE, type CliProcess } from "../helpers/cli-process.js";
import { startTestServer, type TestServer } from "../helpers/server.js";

const MESH = "default";
const SLOW = 60_000;

let server: TestServer;
let dataDir: string;
let work: string;
let ownerToken: string;
let n = 0;
/** Every value and token handed out: none may ever show in a sidecar's output. */
const secrets = new Set<string>();
const running: CliProcess[] = [];

beforeAll(async () => {
  dataDir = mkdtempSync(path.join(os.tmpdir(), "secretd-sidecar-data-"));
  work = mkdtempSync(path.join(os.tmpdir(), "secretd-sidecar-"));
  chmodSync(work, 0o755);
  server = await startTestServer({ dataDir });
  ownerToken = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"] });
  secrets.add(ownerToken);
});

afterEach(async () => {
  for (const p of running.splice(0)) {
    await p.stop("SIGKILL");
    for (const s of secrets) {
      expect(p.stderr()).not.toContain(s);
      expect(p.stdout()).not.toContain(s);
    }
  }
});

afterAll(async () => {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function val(s: string): string {
  secrets.add(s);
  return s;
}

async function create(name: string, data: Record<string, string>): Promise<Secret> {
  for (const v of Object.values(data)) val(v);
  return server.call<Secret>("createSecret", { mesh: MESH, name, data: bytes(data) }, ownerToken);
}

function bytes(data: Record<string, string>): Record<string, Buffer> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v)]));
}

async function update(name: string, data: Record<string, string>): Promise<Secret> {
  for (const v of Object.values(data)) val(v);
  const cur = await server.call<Secret>("getSecret", { mesh: MESH, name }, ownerToken);
  return server.call<Secret>("updateSecret", { mesh: MESH, name, etag: cur.etag, data: bytes(data) }, ownerToken);
}

interface Setup {
  name: string;
  dir: string;
  projection: string;
  tokenFile: string;
}

/** A fresh secret name, an empty DIR, a token file and a projection file for it. */
function setup(projectionYaml: (name: string) => string, token = ownerToken): Setup {
  n++;
  const name = `s${n}`;
  const base = path.join(work, name);
  mkdirSync(base, { mode: 0o755 });
  const dir = path.join(base, "out");
  mkdirSync(dir, { mode: 0o755 });
  const projection = path.join(base, "projection.yaml");
  writeFileSync(projection, projectionYaml(name), { mode: 0o644 });
  const tokenFile = path.join(base, "token");
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o644 });
  return { name, dir, projection, tokenFile };
}

const twoKeys = (name: string): string => `mesh: ${MESH}\nitems:\n  - name: ${name}\n    keys:\n      - { key: a, path: ${name}/a, mode: "0440" }\n      - { key: b, path: ${name}/b }\n`;

function env(): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, SECRETD_SERVER: server.address };
  delete e.SECRETD_TOKEN;
  return e;
}

function sidecar(s: Setup, extra: string[] = []): CliProcess {
  const p = startCli(["sidecar", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile, "--max-backoff", "1s", ...extra], env());
  running.push(p);
  return p;
}

function read(s: Setup, file: string): string | undefined {
  try {
    return readFileSync(path.join(s.dir, file), "utf8");
  } catch {
    return undefined;
  }
}

function setOf(s: Setup): string {
  return readlinkSync(path.join(s.dir, "..data"));
}

function updates(p: CliProcess): number {
  return p.logs().filter((l) => l.msg === "files updated").length;
}

describe("secretd sidecar --once", () => {
  it("when run once, then DIR holds the kubelet layout with the projected modes and the process exits 0 without printing a value", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "alpha-1", b: "beta-1" });
    const r = await runCli(["sidecar", "--once", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
    expect(r.code, r.err).toBe(0);
    const set = setOf(s);
    expect(set).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/);
    expect(readdirSync(s.dir).sort()).toEqual(["..data", set, s.name].sort());
    expect(readlinkSync(path.join(s.dir, s.name))).toBe(`..data/${s.name}`);
    expect(read(s, `${s.name}/a`)).toBe("alpha-1");
    expect(read(s, `${s.name}/b`)).toBe("beta-1");
    expect(statSync(path.join(s.dir, s.name, "a")).mode & 0o777).toBe(0o440);
    expect(statSync(path.join(s.dir, s.name, "b")).mode & 0o777).toBe(0o400);
    expect(statSync(path.join(s.dir, set, s.name)).mode & 0o777).toBe(0o750);
    const line = JSON.parse(r.err.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>;
    expect(line).toMatchObject({ msg: "files updated", files: 2, changed: true, sources: [`${MESH}/${s.name}@1`] });
    for (const v of [...secrets]) expect(r.err + r.out).not.toContain(v);
  });

  it("when the secret is missing, then an empty set is swapped in and the sidecar exits 1 with NOT_FOUND", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "gone-a", b: "gone-b" });
    const args = ["sidecar", "--once", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile];
    expect((await runCli(args, env())).code).toBe(0);
    await server.call("deleteSecret", { mesh: MESH, name: s.name, force: true }, ownerToken);
    const r = await runCli(args, env());
    expect(r.code).toBe(1);
    expect(r.err).toContain("secretd: NOT_FOUND:");
    expect(readdirSync(path.join(s.dir, "..data"))).toEqual([]);
    expect(read(s, `${s.name}/a`)).toBeUndefined();
  });

  it("when the projection file or a flag is bad, then the sidecar exits 2 naming it, before touching DIR", async () => {
    const s = setup((name) => `items:\n  - name: ${name}\n    keys:\n      - { key: a, mdoe: "0400" }\n`);
    const r = await runCli(["sidecar", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
    expect(r.code).toBe(2);
    expect(r.err).toContain(s.projection);
    expect(r.err).toContain("items[0].keys[0].mdoe");
    const good = setup(twoKeys);
    for (const [flags, named] of [
      [["--signal-pid", "abc"], "--signal-pid"],
      [["--signal-pid", "1", "--exec-on-change", "true"], "--exec-on-change"],
      [["--signal", "SIGNOPE", "--signal-pid", "1"], "--signal"],
      [["--max-backoff", "soon"], "--max-backoff"],
    ] as const) {
      const bad = await runCli(["sidecar", "--dir", good.dir, "--projection", good.projection, "--token-file", good.tokenFile, ...flags], env());
      expect(bad.code, flags.join(" ")).toBe(2);
      expect(bad.err).toContain(named);
    }
    const orphan = await runCli(["sidecar", "--dir", path.join(good.dir, "nope", "out"), "--projection", good.projection, "--token-file", good.tokenFile], env());
    expect(orphan.code).toBe(2);
    expect(orphan.err).toMatch(/--dir: .*nope\/out does not exist, nor does its parent .*nope: create the parent first/);
    expect(readdirSync(good.dir)).toEqual([]);
  });

  it("when a projection path escapes DIR, then the sidecar exits 2 naming the file and the field, before asking the server", async () => {
    const s = setup((name) => `mesh: ${MESH}\nitems:\n  - name: ${name}\n    keys:\n      - { key: a, path: ../escaped }\n`);
    await create(s.name, { a: "esc-a" });
    for (const once of [["--once"], []]) {
      const r = await runCli(["sidecar", ...once, "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
      expect(r.code, r.err).toBe(2);
      expect(r.err).toContain(`secretd: INVALID_ARGUMENT: projection file ${s.projection}: items[0].keys[0].path "../escaped": must not escape the directory`);
    }
    expect(readdirSync(s.dir)).toEqual([]);
    expect(readdirSync(path.dirname(s.dir)).sort()).toEqual(["out", "projection.yaml", "token"]);
  });

  it("when DIR is missing and its parent exists, then the sidecar creates it 0700 and fills it", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "mk-a", b: "mk-b" });
    const dir = path.join(s.dir, "new");
    const r = await runCli(["sidecar", "--once", "--dir", dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
    expect(r.code, r.err).toBe(0);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(path.join(dir, s.name, "a"), "utf8")).toBe("mk-a");
  });

  it("when DIR is not writable by the sidecar, then it exits 2 saying so", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "ro-a", b: "ro-b" });
    chmodSync(s.dir, 0o555);
    // root writes anywhere: when the tests run as root, the sidecar runs without the capabilities that allow it.
    const asOthers = process.getuid?.() === 0 ? { launcher: WITHOUT_DAC_OVERRIDE } : {};
    const r = await runCli(["sidecar", "--once", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env(), asOthers);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/--dir: .* is not writable \(EACCES\)/);
    expect(readdirSync(s.dir)).toEqual([]);
  });

  it("when a symlink out of DIR is planted where an entry goes, then the sidecar refuses and writes nothing through it", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "planted-a", b: "planted-b" });
    const elsewhere = mkdtempSync(path.join(work, "elsewhere-"));
    symlinkSync(elsewhere, path.join(s.dir, s.name));
    const r = await runCli(["sidecar", "--once", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
    expect(r.code).toBe(1);
    expect(r.err).toContain("FAILED_PRECONDITION");
    expect(r.err).toContain("not placed by secretd");
    expect(readdirSync(elsewhere)).toEqual([]);
    expect(lstatSync(path.join(s.dir, s.name)).isSymbolicLink()).toBe(true);
    expect(readlinkSync(path.join(s.dir, s.name))).toBe(elsewhere);
  });

  it(
    "when the projection is over the size limit, then it is refused with RESOURCE_EXHAUSTED and nothing is written",
    async () => {
      n++;
      const base = `big${n}`;
      const items: string[] = [];
      for (let i = 0; i < 9; i++) {
        await server.call("createSecret", { mesh: MESH, name: `${base}-${i}`, data: { v: Buffer.alloc(1_000_000, 0x61 + i) } }, ownerToken);
        items.push(`  - { name: ${base}-${i}, envPrefix: P${i}_ }`);
      }
      const s = setup(() => `mesh: ${MESH}\nitems:\n${items.join("\n")}\n`);
      const r = await runCli(["sidecar", "--once", "--dir", s.dir, "--projection", s.projection, "--token-file", s.tokenFile], env());
      expect(r.code, r.err).toBe(1);
      expect(r.err).toContain("RESOURCE_EXHAUSTED");
      expect(readdirSync(s.dir)).toEqual([]);
    },
    SLOW,
  );
});

describe("secretd project --dry-run", () => {
  it("when asked for a dry run, then the layout, sizes, versions and revision are printed and no value", async () => {
    const s = setup(twoKeys);
    await create(s.name, { a: "dry-alpha", b: "dry-beta-22" });
    const table = await runCli(["project", "--dry-run", "--projection", s.projection, "--token-file", s.tokenFile], env());
    expect(table.code, table.err).toBe(0);
    expect(table.out).toMatch(new RegExp(`${s.name}\\s+a\\s+A\\s+${s.name}/a\\s+0440\\s+9\\n`));
    expect(table.out).toMatch(new RegExp(`${s.name}\\s+b\\s+B\\s+${s.name}/b\\s+0400\\s+11\\n`));
    expect(table.out).toContain(`sources:  ${MESH}/${s.name}@1`);
    expect(table.out).toMatch(/revision: [0-9a-f]{64}\n/);
    const json = await runCli(["project", "--dry-run", "-o", "json", "--projection", s.projection, "--token-file", s.tokenFile], env());
    const doc = JSON.parse(json.out) as { values: Array<Record<string, unknown>>; sources: unknown[]; revision: string };
    expect(doc.values[0]).toEqual({ secret: s.name, key: "a", env: "A", path: `${s.name}/a`, mode: "0440", size: 9 });
    expect(doc.sources).toEqual([{ mesh: MESH, name: s.name, version: 1 }]);
    for (const out of [table.out, json.out]) {
      expect(out).not.toContain("dry-alpha");
      expect(out).not.toContain("dry-beta-22");
      expect(out).not.toContain(Buffer.from("dry-alpha").toString("base64"));
    }
  });
});

describe("secretd sidecar (watching)", () => {
  it(
    "when the secret is updated, then the files change through a new set, the old set goes and --exec-on-change runs without the token",
    async () => {
      const s = setup(twoKeys);
      await create(s.name, { a: "w-a-1", b: "w-b-1" });
      const marker = path.join(work, `${s.name}.marker`);
      sidecar(s, ["--exec-on-change", `echo "$SECRETD_REVISION \${SECRETD_TOKEN:-no-token}" >> ${marker}`]);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "w-a-1");
      const first = setOf(s);
      await update(s.name, { a: "w-a-2", b: "w-b-2" });
      await waitFor("the update", () => read(s, `${s.name}/a`) === "w-a-2");
      expect(read(s, `${s.name}/b`)).toBe("w-b-2");
      expect(setOf(s)).not.toBe(first);
      expect(readdirSync(s.dir).filter((e) => e.startsWith("..2"))).toEqual([setOf(s)]);
      const lines = await waitFor("the hook", () => {
        try {
          return readFileSync(marker, "utf8").trim().split("\n");
        } catch {
          return undefined;
        }
      });
      expect(lines).toHaveLength(1); // not for the first set: nothing was reading DIR before it
      expect(lines[0]).toMatch(/^[0-9a-f]{64} no-token$/);
    },
    SLOW,
  );

  it(
    "when a reader resolves ..data once per read during a burst of updates, then it never sees files of two versions mixed",
    async () => {
      const s = setup(twoKeys);
      const big = (v: number, k: string): string => `${k}${v}:`.padEnd(256 * 1024, String(v % 10));
      await create(s.name, { a: big(0, "a"), b: big(0, "b") });
      sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`)?.startsWith("a0:"));
      let stop = false;
      let reads = 0;
      const mixes: string[] = [];
      const torn: string[] = [];
      const reader = (async () => {
        while (!stop) {
          try {
            const set = await readlink(path.join(s.dir, "..data"));
            const a = await readFile(path.join(s.dir, set, s.name, "a"), "utf8");
            const b = await readFile(path.join(s.dir, set, s.name, "b"), "utf8");
            const va = /^a(\d+):/.exec(a)?.[1];
            const vb = /^b(\d+):/.exec(b)?.[1];
            if (va !== vb) mixes.push(`${va}/${vb}`);
            // through the top-level link, a file is always one whole version
            const direct = await readFile(path.join(s.dir, s.name, "a"), "utf8");
            if (direct.length !== 256 * 1024 || direct !== big(Number(/^a(\d+):/.exec(direct)?.[1]), "a")) torn.push(direct.slice(0, 12));
            reads++;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err; // the old set was removed mid-read: read again
          }
        }
      })();
      for (let v = 1; v <= 12; v++) {
        const cur = await server.call<Secret>("getSecret", { mesh: MESH, name: s.name }, ownerToken);
        await server.call("updateSecret", { mesh: MESH, name: s.name, etag: cur.etag, data: bytes({ a: big(v, "a"), b: big(v, "b") }) }, ownerToken);
        await waitFor(`version ${v} on disk`, () => read(s, `${s.name}/a`)?.startsWith(`a${v}:`));
      }
      stop = true;
      await reader;
      expect(reads).toBeGreaterThan(10);
      expect(mixes).toEqual([]);
      expect(torn).toEqual([]);
    },
    SLOW,
  );

  it(
    "when the server is down for many backoff steps, then the files stay and each retry dials afresh; when it is back on the same port, then the next retry is watching again, writes nothing and takes later updates",
    async () => {
      const s = setup(twoKeys);
      await create(s.name, { a: "r-a-1", b: "r-b-1" });
      const p = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "r-a-1");
      const set = setOf(s);
      const port = server.app.port;
      const retries = (): number => p.logs().filter((l) => l.msg === "reconnecting after backoff").length;
      await server.stop();
      // The test keeps the port while the server is down: a listener that counts the
      // sidecar's connection attempts and drops each one.
      let dials = 0;
      const stand = createServer((socket) => {
        dials++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => stand.listen(port, "127.0.0.1", resolve));
      await waitFor("the sidecar to notice", () => p.logs().some((l) => l.msg === "watch ended; keeping the last good values"));
      const before = retries();
      // With --max-backoff 1s, a dozen retries are many steps of grpc-js's own backoff (1 s, ×1.6).
      await waitFor("a dozen failed reconnects", () => retries() >= before + 12, 30_000);
      expect(dials).toBeGreaterThanOrEqual(retries() - before - 2); // a connection per attempt, not one per grpc-js backoff step
      expect(read(s, `${s.name}/a`)).toBe("r-a-1");
      expect(read(s, `${s.name}/b`)).toBe("r-b-1");
      expect(setOf(s)).toBe(set);

      // Back right after an attempt, so a channel that kept backing off would stay "down" for a whole step.
      const seen = dials;
      await waitFor("the next attempt", () => dials > seen);
      await new Promise<void>((resolve) => stand.close(() => resolve()));
      server = await startTestServer({ dataDir, listen: `127.0.0.1:${port}` });
      const atRestart = retries();
      const writes = updates(p);
      await waitFor("watching again", () => p.logs().some((l) => l.msg === "watching again"));
      expect(retries() - atRestart).toBeLessThanOrEqual(2); // not a stale "connection refused" per retry
      expect(setOf(s)).toBe(set); // known_revision: an unchanged projection writes nothing
      expect(updates(p)).toBe(writes);
      await update(s.name, { a: "r-a-2", b: "r-b-2" });
      await waitFor("the update after the restart", () => read(s, `${s.name}/a`) === "r-a-2");
      await waitFor("its log line", () => updates(p) > writes);
      expect(updates(p)).toBe(writes + 1);
    },
    SLOW,
  );

  it(
    "when someone adds a key that makes the server refuse the projection, then the sidecar keeps the last good set, says why and takes the fix",
    async () => {
      // item 0 projects every key of the secret (at <name>/<key>); item 1 puts key a at <name>/x.
      const s = setup((name) => `mesh: ${MESH}\nitems:\n  - name: ${name}\n  - name: ${name}\n    keys:\n      - { key: a, env: X_A, path: ${name}/x }\n`);
      await create(s.name, { a: "c-a-1", b: "c-b-1" });
      const p = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/x`) === "c-a-1");
      const set = setOf(s);
      await update(s.name, { a: "c-a-2", b: "c-b-2", x: "c-x-2" }); // <name>/x is now produced twice
      const refused = await waitFor("the refusal", () => p.logs().find((l) => l.code === "INVALID_ARGUMENT"));
      expect(refused.msg).toContain("keeping the last good values");
      // The server answers it (file paths are judged where files are written); the sidecar
      // cannot write it, keeps the set and goes on watching.
      expect(String(refused.details)).toContain(`"${s.name}/x": appears twice`);
      expect(setOf(s)).toBe(set);
      expect(read(s, `${s.name}/a`)).toBe("c-a-1");
      expect(p.child.exitCode).toBeNull();
      await update(s.name, { a: "c-a-3", b: "c-b-3" });
      await waitFor("the fixed secret on disk", () => read(s, `${s.name}/a`) === "c-a-3");
      expect(read(s, `${s.name}/x`)).toBe("c-a-3");
      expect(p.child.exitCode).toBeNull();
    },
    SLOW,
  );

  it(
    "when the sidecar itself restarts on the same DIR, then the unchanged set is kept as it is",
    async () => {
      const s = setup(twoKeys);
      await create(s.name, { a: "k-a", b: "k-b" });
      const p1 = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "k-a");
      const set = setOf(s);
      await p1.stop();
      const p2 = sidecar(s);
      await waitFor("the resync", () => p2.logs().some((l) => l.msg === "files unchanged"));
      expect(setOf(s)).toBe(set);
    },
    SLOW,
  );

  it(
    "when the grant is revoked, then the values are removed; when it is granted again, then they come back",
    async () => {
      const bob = await server.token({ tenant: "acme", sub: "bob", roles: [] });
      secrets.add(bob);
      const s = setup(twoKeys, bob);
      await create(s.name, { a: "g-a", b: "g-b" });
      const grant = { mesh: MESH, name: s.name, subject: "user:bob", permission: Permission.PERMISSION_PROJECT };
      await server.call("grantAccess", grant, ownerToken);
      const p = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "g-a");
      await server.call("revokeAccess", { mesh: MESH, name: s.name, subject: "user:bob" }, ownerToken);
      await waitFor("the values to go", () => read(s, `${s.name}/a`) === undefined);
      expect(readdirSync(path.join(s.dir, "..data"))).toEqual([]);
      expect(readdirSync(s.dir).filter((e) => !e.startsWith(".."))).toEqual([]);
      await waitFor("its log line", () => p.logs().some((l) => l.msg === "values removed")); // flushed within a second
      await server.call("grantAccess", grant, ownerToken);
      await waitFor("the values to return", () => read(s, `${s.name}/a`) === "g-a", 20_000);
    },
    SLOW,
  );

  it(
    "when the token expires, then the watch ends; when the token file is rotated, then updates flow again",
    async () => {
      // The token outlives any start-up on a loaded box; the server's clock then moves past it.
      const ttlSec = 30;
      const s = setup(twoKeys, await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"], ttlSec }));
      secrets.add(readFileSync(s.tokenFile, "utf8").trim());
      await create(s.name, { a: "t-a-1", b: "t-b-1" });
      const p = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "t-a-1");
      await server.clock.advance((ttlSec + 1) * 1000);
      // A change after the token's exp ends the watch; the expired caller is never sent it.
      await update(s.name, { a: "t-a-2", b: "t-b-2" });
      await waitFor("the expiry", () => p.logs().some((l) => l.code === "UNAUTHENTICATED"), 20_000);
      expect(read(s, `${s.name}/a`)).toBe("t-a-1");
      const fresh = await server.token({ tenant: "acme", sub: "olivia", roles: ["data-developer"], ttlSec: 3600 });
      secrets.add(fresh);
      writeFileSync(s.tokenFile, `${fresh}\n`);
      await waitFor("the values with the new token", () => read(s, `${s.name}/a`) === "t-a-2");
    },
    SLOW,
  );

  it(
    "when the token file is rotated while the watch is healthy, then the sidecar reconnects at once with the new token",
    async () => {
      const s = setup(twoKeys);
      await create(s.name, { a: "rot-a", b: "rot-b" });
      const p = sidecar(s);
      await waitFor("the first set", () => read(s, `${s.name}/a`) === "rot-a");
      // The new token's subject has no right on the secret: its values must go, which only a re-read token can cause.
      const stranger = await server.token({ tenant: "acme", sub: "stranger", roles: [] });
      secrets.add(stranger);
      writeFileSync(s.tokenFile, `${stranger}\n`);
      await waitFor("the token re-read", () => p.logs().some((l) => l.msg === "token file changed: reconnecting with the new token"));
      await waitFor("the values to go", () => read(s, `${s.name}/a`) === undefined);
    },
    SLOW,
  );

  it(
    "when --signal-pid is given, then that process gets the signal after each change",
    async () => {
      const s = setup(twoKeys);
      await create(s.name, { a: "sig-a-1", b: "sig-b-1" });
      const { spawn } = await import("node:child_process");
      const app = spawn(process.execPath, ["-e", 'process.on("SIGUSR1", () => console.log("reload")); setInterval(() => {}, 1000)'], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      app.stdout.on("data", (b: Buffer) => (out += b.toString()));
      try {
        sidecar(s, ["--signal-pid", String(app.pid), "--signal", "USR1"]);
        await waitFor("the first set", () => read(s, `${s.name}/a`) === "sig-a-1");
        await update(s.name, { a: "sig-a-2", b: "sig-b-2" });
        await waitFor("the signal", () => out.includes("reload"));
        expect(read(s, `${s.name}/a`)).toBe("sig-a-2");
      } finally {
        app.kill("SIGKILL");
      }
    },
    SLOW,
  );
});
