/**
 * Start-up safety of the real `secretd serve` process (#15 items 1-6): it refuses to start
 * rather than serve wrong (a keyring lacking stored KEK ids, a TLS key that doesn't match
 * its certificate, a bad client CA, a data dir that cannot be made), prints the dev token
 * only when someone can use it, stops with `npm start`, and `token mint` / `keys rewrap`
 * never invent keys or report success for a database that isn't there.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { credentials, Metadata } from "@grpc/grpc-js";
import { afterAll, describe, expect, it } from "vitest";
import { CreateSecretRequest, SecretServiceClient } from "../../src/gen/secrets/v1/secrets.js";
import { MAIN, runCli } from "../helpers/cli.js";
import { hasOpenssl } from "../helpers/openssl.js";
import { makePki } from "../helpers/pki.js";
import { startTestServer } from "../helpers/server.js";

// Each case starts several serve processes: generous on a loaded 2-core machine.
const SLOW = 180_000;
const dirs: string[] = [];
const children: ChildProcess[] = [];

function tmp(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "secretd-start-"));
  dirs.push(d);
  return d;
}

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Serving {
  child: ChildProcess;
  port: number;
  stderr: () => string;
  stopped: Promise<number | null>;
}

/** `secretd serve` until its "secretd serving" log line (rejects with stderr if it exits first). */
function serve(args: readonly string[], env: Record<string, string> = {}): Promise<Serving> {
  const child = spawn(process.execPath, [MAIN, "serve", "--listen", "127.0.0.1:0", ...args], {
    env: { ...cleanEnv(), SECRETD_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stderr!.on("data", (b: Buffer) => (err += b.toString()));
  const stopped = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      const m = /"listen":"[^"]*:(\d+)"[^\n]*"msg":"secretd serving"/.exec(out);
      if (m) resolve({ child, port: Number(m[1]), stderr: () => err, stopped });
    });
    void stopped.then((code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("SECRETD_") && !k.startsWith("npm_")) env[k] = v;
  return env;
}

async function stop(s: Serving): Promise<void> {
  s.child.kill("SIGTERM");
  await s.stopped;
}

function tokenIn(stderr: string): string | undefined {
  return /export SECRETD_TOKEN=(\S+)/.exec(stderr)?.[1];
}

/** The banner's token: it is written just after the "serving" log line, so wait for it. */
async function bannerToken(s: Serving): Promise<string> {
  for (let end = Date.now() + 20_000; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    const t = tokenIn(s.stderr());
    if (t !== undefined) return t;
  }
  throw new Error(`no token banner: ${s.stderr()}`);
}

async function createOne(port: number, token: string): Promise<void> {
  const client = new SecretServiceClient(`127.0.0.1:${port}`, credentials.createInsecure());
  const md = new Metadata();
  md.set("authorization", `Bearer ${token}`);
  try {
    await new Promise<void>((resolve, reject) =>
      client.createSecret(CreateSecretRequest.fromPartial({ mesh: "default", name: "db", stringData: { password: "s3cr3t" } }), md, (e) => (e ? reject(e) : resolve())),
    );
  } finally {
    client.close();
  }
}

describe("keyring against the stored data keys", () => {
  it("when kek.json is gone or lacks a stored KEK id, then serve refuses to start naming the ids and the file, and creates no new KEK", async () => {
    const dataDir = tmp();
    const first = await serve(["--data-dir", dataDir]);
    const token = await bannerToken(first);
    await createOne(first.port, token);
    await stop(first);
    const kekFile = path.join(dataDir, "kek.json");
    const ring = JSON.parse(readFileSync(kekFile, "utf8")) as { active: string; keys: { id: string }[] };

    rmSync(kekFile);
    const gone = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir]);
    expect(gone.status).not.toBe(0);
    expect(gone.err).toContain(kekFile);
    expect(gone.err).toContain(ring.active);
    expect(existsSync(kekFile)).toBe(false);

    // A keyring file holding another KEK only: the same refusal, naming the missing id.
    const other = path.join(tmp(), "kek.json");
    const init = await serve(["--data-dir", path.dirname(other)]);
    await stop(init);
    const lacking = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--kek-file", other]);
    expect(lacking.status).not.toBe(0);
    expect(lacking.err).toContain(ring.active);
    expect(lacking.err).toContain(other);
    expect(lacking.err).toMatch(/lacks/);
  }, SLOW);

  it("when the database is empty, then a dev KEK is created as before", async () => {
    const dataDir = tmp();
    const s = await serve(["--data-dir", dataDir]);
    await stop(s);
    expect(existsSync(path.join(dataDir, "kek.json"))).toBe(true);
  }, SLOW);
});

describe.skipIf(!hasOpenssl)("TLS material checked at start", () => {
  it("when --tls-key does not match --tls-cert, or --tls-client-ca is unreadable or not a certificate, then serve exits 2 naming the flag", async () => {
    const pki = makePki();
    dirs.push(pki.dir);
    const base = ["serve", "--listen", "127.0.0.1:0", "--tls-cert", pki.file("server.crt")];
    const mismatch = await runCli([...base, "--data-dir", tmp(), "--tls-key", pki.file("other.key")]);
    expect(mismatch.status).toBe(2);
    expect(mismatch.err).toMatch(/^secretd: INVALID_ARGUMENT: --tls-key: does not match --tls-cert/m);
    expect(mismatch.err).not.toContain("PRIVATE KEY");

    const missingCa = await runCli([...base, "--data-dir", tmp(), "--tls-key", pki.file("server.key"), "--tls-client-ca", path.join(pki.dir, "nope.crt")]);
    expect(missingCa.status).toBe(2);
    expect(missingCa.err).toContain("--tls-client-ca: cannot read");

    const notPem = path.join(pki.dir, "garbage.crt");
    writeFileSync(notPem, "not a certificate\n");
    const badCa = await runCli([...base, "--data-dir", tmp(), "--tls-key", pki.file("server.key"), "--tls-client-ca", notPem]);
    expect(badCa.status).toBe(2);
    expect(badCa.err).toContain("--tls-client-ca: holds no PEM certificate");

    const ok = await serve(["--data-dir", tmp(), "--tls-cert", pki.file("server.crt"), "--tls-key", pki.file("server.key"), "--tls-client-ca", pki.file("ca.crt")]);
    await stop(ok);
  }, SLOW);
});

describe("token mint", () => {
  it("when there is no signing key file, then it exits 2 naming the path and creates nothing", async () => {
    const cwd = tmp();
    const r = await runCli(["token", "mint", "--tenant", "acme", "--sub", "ci"], { cwd });
    expect(r.status).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toContain(path.join(cwd, "data", "jwt-dev.key"));
    expect(existsSync(path.join(cwd, "data"))).toBe(false);
    const named = path.join(cwd, "hs.key");
    const r2 = await runCli(["token", "mint", "--tenant", "acme", "--sub", "ci", "--jwt-hs256-secret-file", named], { cwd });
    expect(r2.status).toBe(2);
    expect(r2.err).toContain(`--jwt-hs256-secret-file: no signing key at ${named}`);
  }, SLOW);
});

describe("the dev token banner", () => {
  it("when the dev keys are created, then the banner says export SECRETD_TOKEN and the token works; on a later start (no TTY) no token is printed unless --dev-token always", async () => {
    const dataDir = tmp();
    const first = await serve(["--data-dir", dataDir]);
    const token = await bannerToken(first);
    expect(first.stderr()).not.toMatch(/export TOKEN=/);
    await createOne(first.port, token);
    await stop(first);

    const again = await serve(["--data-dir", dataDir]);
    await stop(again);
    expect(again.stderr()).not.toContain("SECRETD_TOKEN=");
    expect(again.stderr()).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);

    const forced = await serve(["--data-dir", dataDir, "--dev-token", "always"]);
    const forcedToken = await bannerToken(forced);
    await createOne(forced.port, forcedToken).catch((e: { code?: number }) => expect(e.code).toBe(6)); // ALREADY_EXISTS: the token works
    await stop(forced);

    const never = await serve(["--data-dir", tmp(), "--dev-token", "never"]);
    await stop(never);
    expect(never.stderr()).not.toContain("SECRETD_TOKEN=");
  }, SLOW);
});

/** `npm start` serving on a fresh data dir: npm's process, the server's pid, and its stdout so far. */
async function npmStart(): Promise<{ npm: ChildProcess; pid: number; out: () => string }> {
  const dataDir = tmp();
  const npm = spawn("npm", ["start", "--silent", "--", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--log-level", "info"], {
    env: { ...cleanEnv(), SECRETD_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
    cwd: path.resolve("."),
  });
  children.push(npm);
  let out = "";
  npm.stdout!.on("data", (b: Buffer) => (out += b.toString()));
  npm.stderr!.resume();
  const pid = await new Promise<number>((resolve, reject) => {
    const t = setInterval(() => {
      if (/"msg":"secretd serving"/.test(out)) {
        clearInterval(t);
        const serverPid = serverPidUnder(npm.pid!);
        if (serverPid === undefined) reject(new Error("no server process under npm"));
        else resolve(serverPid);
      } else if (npm.exitCode !== null) {
        clearInterval(t);
        reject(new Error(`npm start exited ${npm.exitCode}: ${out}`));
      }
    }, 50);
  });
  return { npm, pid, out: () => out };
}

async function gone(pid: number): Promise<boolean> {
  for (const deadline = Date.now() + 30_000; alive(pid) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

describe("npm start", () => {
  it("when npm start gets SIGTERM, then the server it started drains and exits too", async () => {
    const { npm, pid, out } = await npmStart();
    // npm start runs the `secretd` command (bin/secretd) with its V8 flags.
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")).toContain("--max-semi-space-size=4");
    npm.kill("SIGTERM");
    expect(await gone(pid)).toBe(true);
    expect(out()).toMatch(/"msg":"draining"/);
  }, SLOW);

  it("when the npm process of npm start is SIGKILLed, then the server it started drains and exits too (no sh left between them)", async () => {
    const { npm, pid } = await npmStart();
    expect(readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]).toBe(String(npm.pid));
    npm.kill("SIGKILL");
    expect(await gone(pid)).toBe(true);
  }, SLOW);
});

describe("refused starts", () => {
  it("when --listen or --metrics-listen is in use, then serve exits 2 naming the flag and the address, and creates nothing", async () => {
    const owned = net.createServer();
    await new Promise<void>((resolve) => owned.listen(0, "127.0.0.1", resolve));
    const port = (owned.address() as net.AddressInfo).port;
    try {
      const dataDir = path.join(tmp(), "data");
      const r = await runCli(["serve", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir]);
      expect(r.status).toBe(2);
      expect(r.err).toMatch(new RegExp(`^secretd: INVALID_ARGUMENT: --listen: 127\\.0\\.0\\.1:${port} is already in use`, "m"));
      expect(r.err).not.toContain("No address added");
      expect(existsSync(dataDir)).toBe(false);

      const empty = tmp();
      const m = await runCli(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", `127.0.0.1:${port}`, "--data-dir", empty]);
      expect(m.status).toBe(2);
      expect(m.err).toContain(`--metrics-listen: 127.0.0.1:${port} is already in use`);
      expect(readdirSync(empty)).toEqual([]);
    } finally {
      owned.close();
    }
  }, SLOW);

  it("when a file a flag names is missing (--kek-file, --tls-cert, --jwt-hs256-secret-file) or a flag is bad, then serve refuses and the data dir stays empty", async () => {
    const files = tmp();
    const cases: [string[], RegExp][] = [
      [["--kek-file", path.join(files, "kek.json")], /KEK file .* does not exist/],
      [["--tls-cert", path.join(files, "srv.crt"), "--tls-key", path.join(files, "srv.key")], /--tls-cert: cannot read/],
      [["--jwt-hs256-secret-file", path.join(files, "hs.key")], /cannot read JWT HS256 secret file/],
      [["--max-versions", "zero"], /max/i],
    ];
    for (const [flags, message] of cases) {
      const dataDir = tmp();
      const r = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, ...flags]);
      expect(r.status, flags.join(" ")).not.toBe(0);
      expect(r.err, flags.join(" ")).toMatch(message);
      expect(readdirSync(dataDir), flags.join(" ")).toEqual([]);
    }
  }, SLOW);
});

describe("key files others can read", () => {
  it("when the HS256 secret file is mode 0644, then the server starts and logs a warning naming the file and chmod 600", async () => {
    const dir = tmp();
    const file = path.join(dir, "hs256.key");
    writeFileSync(file, "k".repeat(48) + "\n");
    chmodSync(file, 0o644);
    const s = await startTestServer({ jwtHs256SecretFile: file });
    try {
      const line = s.logs.find((l) => l.includes(`JWT HS256 secret file ${file} has mode 0644`));
      expect(line).toBeDefined();
      expect(JSON.parse(line!)).toMatchObject({ level: 40, file, mode: "0644" });
      expect(line).toContain(`chmod 600 ${file}`);
    } finally {
      await s.stop();
    }
    chmodSync(file, 0o600);
    const quiet = await startTestServer({ jwtHs256SecretFile: file });
    await quiet.stop();
    expect(quiet.logs.some((l) => l.includes("has mode"))).toBe(false);
  }, SLOW);
});

describe("a log reader that is gone", () => {
  it("when the pipe serve logs to is closed by its reader (tee gone), then SIGTERM still drains and exits", async () => {
    const s = await serve(["--data-dir", tmp()]);
    s.child.stdout!.destroy();
    s.child.stderr!.destroy();
    // The lines "draining" and "stopped" are then written into a pipe nobody reads.
    s.child.kill("SIGTERM");
    expect(await s.stopped).toBe(0);
  }, SLOW);
});

describe("bad data dirs", () => {
  it("when --data-dir cannot be created (/proc/nope), then serve exits non-zero naming it instead of spinning", async () => {
    const r = await runCli(["serve", "--listen", "127.0.0.1:0", "--data-dir", "/proc/nope"]);
    expect(r.status).not.toBe(0);
    expect(r.err).toMatch(/^secretd: FAILED_PRECONDITION: cannot create directory \/proc\/nope/m);
  }, SLOW);

  it("when keys rewrap or keys rotate find no database, then they exit 1 naming it and leave no KEK file behind", async () => {
    const dataDir = path.join(tmp(), "none");
    for (const verb of ["rewrap", "rotate"]) {
      const r = await runCli(["keys", verb, "--data-dir", dataDir]);
      expect(r.status, verb).toBe(1);
      expect(r.err, verb).toContain(`no database at ${path.join(dataDir, "secretd.db")}`);
      expect(r.out, verb).toBe("");
    }
    expect(existsSync(dataDir)).toBe(false);
  }, SLOW);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The `node … serve` process npm started (npm → sh → node, or npm → node). */
function serverPidUnder(root: number): number | undefined {
  const parentOf = new Map<number, number>();
  const cmdOf = new Map<number, string>();
  for (const entry of readdirProc()) {
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parentOf.set(entry, ppid);
      cmdOf.set(entry, readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" "));
    } catch {
      // the process ended meanwhile
    }
  }
  const under = (pid: number): boolean => {
    for (let p = parentOf.get(pid); p !== undefined && p > 1; p = parentOf.get(p)) if (p === root) return true;
    return false;
  };
  for (const [pid, cmd] of cmdOf) if (under(pid) && /dist\/main\.js serve/.test(cmd) && !cmd.startsWith("sh ")) return pid;
  return undefined;
}

function readdirProc(): number[] {
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number);
}
