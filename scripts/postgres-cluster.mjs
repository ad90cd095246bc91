// A throw-away PostgreSQL cluster, for the tests (test/helpers/postgres.ts) and the
// benchmark (`npm run bench -- --postgres`): initdb in a temporary directory, a loopback
// port, the socket in that directory; stopped and removed by stop(). Run as the
// unprivileged `postgres` user when started as root (initdb refuses root). PostgreSQL
// missing is an error naming the package that installs it, never a silent skip.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { freePort } from "./free-port.mjs";

function binDir() {
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, "bin", "initdb"))) : [];
  const v = versions.sort((a, b) => Number(b) - Number(a))[0];
  if (v === undefined) throw new Error("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install postgresql");
  return path.join(root, v, "bin");
}

/**
 * @param {{ fsync?: boolean, tls?: { cert: string, key: string }, passwords?: boolean, settings?: Record<string, string | number> }} [options] fsync off by
 * default: a test cluster lives for one file. With `tls`, the server speaks TLS with that
 * certificate and key (PEM files) and refuses every TCP connection that does not. With
 * `passwords`, TCP logins other than the `postgres` superuser's need a password (SCRAM,
 * as a packaged PostgreSQL 15 asks for on `host` lines). `settings` adds server settings
 * (`-c name=value`), e.g. { commit_delay: 1000, commit_siblings: 5 } for the benchmarks.
 */
export async function startPostgres(options = {}) {
  const bin = binDir();
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, args) => {
    const [file, argv] = asRoot ? ["runuser", ["-u", "postgres", "--", path.join(bin, cmd), ...args]] : [path.join(bin, cmd), args];
    const r = spawnSync(file, argv, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`${cmd} failed (${r.status}): ${r.stderr || r.stdout}`);
  };
  const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-pg-"));
  if (asRoot) {
    const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
    chownSync(dir, id("-u"), id("-g"));
  }
  const data = path.join(dir, "data");
  const port = await freePort();
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "-N"]);
  let opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${options.fsync ? "on" : "off"} -c max_connections=200`;
  for (const [k, v] of Object.entries(options.settings ?? {})) opts += ` -c ${k}=${v}`;
  if (options.tls) {
    // The server reads its key as the cluster's owner and wants it owner-only.
    for (const [name, from] of [["server.crt", options.tls.cert], ["server.key", options.tls.key]]) {
      const to = path.join(data, name);
      copyFileSync(from, to);
      chmodSync(to, 0o600);
      if (asRoot) chownSync(to, statSync(data).uid, statSync(data).gid);
    }
    writeFileSync(path.join(data, "pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n");
    if (asRoot) chownSync(path.join(data, "pg_hba.conf"), statSync(data).uid, statSync(data).gid);
    opts += " -c ssl=on";
  } else if (options.passwords) {
    writeFileSync(path.join(data, "pg_hba.conf"), "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n");
    if (asRoot) chownSync(path.join(data, "pg_hba.conf"), statSync(data).uid, statSync(data).gid);
  }
  const start = () => run("pg_ctl", ["-D", data, "-o", opts, "-w", "-s", "-l", path.join(dir, "log"), "start"]);
  start();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    url,
    port,
    bin,
    socketDir: dir,
    async createDatabase() {
      const name = `t_${randomBytes(6).toString("hex")}`;
      // The cluster's own certificate is trusted as is here: this is the test harness, not secretd.
      const c = new pg.Client({ connectionString: url, ...(options.tls ? { ssl: { rejectUnauthorized: false } } : {}) });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    kill() {
      run("pg_ctl", ["-D", data, "-m", "immediate", "-s", "stop"]);
    },
    start,
    restart() {
      run("pg_ctl", ["-D", data, "-o", opts, "-m", "fast", "-w", "-s", "-l", path.join(dir, "log"), "restart"]);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run("pg_ctl", ["-D", data, "-m", "immediate", "-s", "stop"]);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
