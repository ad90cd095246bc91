/**
 * `secretd doctor`: checks a data dir the way an operator would before trusting it. It
 * echoes the effective configuration (URL credentials masked; no setting holds a key
 * itself, only paths to key files), checks that key files are owner-only, runs SQLite's
 * integrity_check and opens every stored version with the keyring, naming each one that
 * fails, then checks every secret's row MACs (metadata, grants, versions, create requests)
 * as the server does on a read. With a PostgreSQL --database-url it checks the connection, the schema and that
 * every secret's current version is stored, then opens every version the same way (page
 * integrity is PostgreSQL's own: data checksums, amcheck). Read-only, so it is safe next
 * to running servers. Exit 1 when anything failed.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { Option, type Command } from "commander";
import { DB_FILE, openStorage } from "../storage/open-storage.js";
import { effectiveSettings, maskUrl, type Config } from "../config.js";
import { secretAad } from "../crypto/aad.js";
import { decodeData } from "../crypto/data-codec.js";
import { openVersion } from "../crypto/envelope.js";
import { loadKeyring } from "../crypto/keyring.js";
import { SecretdError } from "../errors.js";
import type { Keyring } from "../crypto/keyring.js";
import { openPostgresSnapshot } from "../storage/postgres/postgres-maintenance.js";
import { MIGRATIONS } from "../storage/sqlite/migrations.js";
import { databaseCounts, integrityProblems, sealedVersions, type SealedVersionRow } from "../storage/sqlite/sqlite-maintenance.js";
import { checkSchema } from "../storage/sqlite/sqlite-schema.js";
import { checkRowMacs, type RowMacResult } from "./doctor-row-macs.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { printError } from "../client/cli-errors.js";
import { withExample } from "../client/help.js";
import { renderDoc } from "./output.js";
import { progress } from "./progress.js";
import { looseKeyFileMode } from "../key-file-mode.js";

type Verdict = "ok" | "note" | "warn" | "FAIL";

interface Report {
  failed: number;
  readonly checks: Array<{ verdict: Verdict; text: string }>;
  /** `counted: false` for a summary of problems already reported one by one. */
  say(verdict: Verdict, text: string, counted?: boolean): void;
}

/** live: print each check as it is made (text output); otherwise only collect them. */
function report(live: boolean): Report {
  return {
    failed: 0,
    checks: [],
    say(verdict, text, counted = true) {
      if (verdict === "FAIL" && counted) this.failed++;
      this.checks.push({ verdict, text });
      if (live) process.stdout.write(`${verdict.padEnd(5)} ${text}\n`);
    },
  };
}

function mode(m: number): string {
  return (m & 0o777).toString(8).padStart(4, "0");
}

/** A file holding key material: it must be a regular file no one but its owner can reach. */
function checkKeyFile(r: Report, what: string, file: string, required: boolean): void {
  if (!existsSync(file)) {
    r.say(required ? "FAIL" : "warn", `${what} ${file}: does not exist`);
    return;
  }
  const st = statSync(file);
  if (!st.isFile()) r.say("FAIL", `${what} ${file}: not a regular file`);
  else if (looseKeyFileMode(file) !== undefined) r.say("FAIL", `${what} ${file}: mode ${mode(st.mode)} lets group or others read it (run chmod 600 ${file})`);
  else r.say("ok", `${what} ${file}: mode ${mode(st.mode)}`);
}

function checkFiles(r: Report, config: Config): void {
  if (existsSync(config.dataDir)) {
    const m = statSync(config.dataDir).mode;
    r.say((m & 0o077) === 0 ? "ok" : "warn", `data dir ${config.dataDir}: mode ${mode(m)}${(m & 0o077) === 0 ? "" : " (0700 recommended)"}`);
  } else if (config.databaseUrl !== "") {
    r.say("note", `data dir ${config.dataDir}: does not exist (with PostgreSQL it only holds default key files)`);
  } else {
    r.say("FAIL", `data dir ${config.dataDir}: does not exist`);
  }
  checkKeyFile(r, "KEK file", config.kekFile, true);
  if (config.jwt.hs256SecretFile !== "") checkKeyFile(r, "HS256 secret file", config.jwt.hs256SecretFile, !config.jwt.hs256IsDevKey);
  if (config.tls !== undefined) checkKeyFile(r, "TLS key", config.tls.key, true);
  const db = path.join(config.dataDir, DB_FILE);
  if (config.databaseUrl === "" && existsSync(db)) checkKeyFile(r, "database", db, true);
}

function errorText(err: unknown): string {
  return err instanceof SecretdError ? `${err.code}: ${err.message}` : "unexpected error";
}

/**
 * The keyring, or a FAIL saying what to do. A missing file's advice depends on the data:
 * a new key is right only for a database that holds no sealed version yet; for stored
 * (e.g. restored) data it would open nothing, so the advice is to restore the keyring.
 */
function keyringOf(r: Report, config: Config, storedVersions: number): Keyring | undefined {
  if (!existsSync(config.kekFile)) {
    r.say(
      "FAIL",
      storedVersions > 0
        ? `keyring: no KEK file at ${config.kekFile}, and the database holds ${storedVersions} sealed version${storedVersions === 1 ? "" : "s"}: put the keyring they were sealed under there ` +
            "(the one backed up with this data); a new key (keys init) cannot open them"
        : `keyring: no KEK file at ${config.kekFile}; the database holds no sealed version yet, so a new keyring is right: secretd keys init --kek-file ${config.kekFile}`,
    );
    return undefined;
  }
  try {
    return loadKeyring(config.kekFile, { create: false, warn: () => {} });
  } catch (err) {
    r.say("FAIL", `keyring: ${errorText(err)}; no stored value can be checked`);
    return undefined;
  }
}

/** Opens every version with the keyring; a version that fails is named, never shown. */
async function checkBlobs(r: Report, keyring: Keyring, rows: AsyncIterable<SealedVersionRow> | Iterable<SealedVersionRow>, total: number): Promise<void> {
  const bar = progress("opening stored versions");
  let seen = 0;
  let opened = 0;
  const failures: string[] = [];
  for await (const row of rows) {
    seen++;
    try {
      const plaintext = openVersion(keyring, secretAad(row), row.dek, row.payload);
      try {
        decodeData(plaintext);
      } finally {
        plaintext.fill(0);
      }
      opened++;
    } catch (err) {
      failures.push(`tenant "${row.tenant}" mesh "${row.mesh}" secret "${row.name}" version ${row.version} (uid ${row.uid}): ${errorText(err)}`);
    }
    bar.update(`${seen} of ${Math.max(seen, total)}`);
  }
  bar.done();
  for (const f of failures) r.say("FAIL", `does not open: ${f}`);
  const kekIds = keyring.keys.map((k) => k.id).join(", ");
  r.say(failures.length === 0 ? "ok" : "FAIL", `opened ${opened} of ${seen} stored versions with the keyring (KEKs ${kekIds}; active ${keyring.active.id})`, false);
}

async function checkSqlite(r: Report, config: Config): Promise<void> {
  const dbFile = path.join(config.dataDir, DB_FILE);
  if (!existsSync(dbFile)) {
    r.say("warn", `database ${dbFile}: does not exist yet (created on the first start)`);
    return;
  }
  const problems = integrityProblems(dbFile);
  if (problems.length === 0) r.say("ok", `database ${dbFile}: integrity_check ok`);
  for (const p of problems.slice(0, 20)) r.say("FAIL", `database ${dbFile}: integrity_check: ${p}`);
  const objects = checkSchema(dbFile);
  if (objects.unknownMigrations.length > 0) r.say("warn", `database ${dbFile}: migrations ${objects.unknownMigrations.join(", ")} are unknown to this build: schema objects not compared`);
  else if (objects.differences.length === 0) r.say("ok", `database ${dbFile}: schema objects are the ones secretd's migrations make`);
  for (const d of objects.differences) r.say("FAIL", `database ${dbFile}: schema: ${d}`);
  const rows = [...sealedVersions(dbFile)];
  const keyring = keyringOf(r, config, rows.length);
  if (keyring === undefined) return;
  await checkBlobs(r, keyring, rows, rows.length);
  const schema = databaseCounts(dbFile).schema;
  const known = Math.max(...MIGRATIONS.map((m) => m.id));
  if (schema !== known) {
    r.say("warn", `database ${dbFile}: schema ${schema}, this build's is ${known}: row MACs not checked (a server of this build migrates it at start)`);
    return;
  }
  const storage = await openStorage(config, { poolSize: 2 });
  try {
    reportMacs(r, await checkRowMacs(storage, keyring));
  } finally {
    await storage.close();
  }
}

function reportMacs(r: Report, res: RowMacResult): void {
  for (const f of res.failures) r.say("FAIL", `rows do not authenticate: ${f}`);
  const bad = res.failures.length;
  r.say(bad === 0 ? "ok" : "FAIL", `checked the row MACs of ${res.examined} secrets: ${res.examined - bad} authenticate${bad === 0 ? "" : `, ${bad} do not`} (metadata, grants, versions, create requests)`, false);
}

async function checkPostgres(r: Report, config: Config): Promise<void> {
  const shown = maskUrl(config.databaseUrl);
  let snap;
  try {
    snap = await openPostgresSnapshot(config.databaseUrl, config.database.statementTimeoutMs);
  } catch (err) {
    r.say("FAIL", `database ${shown}: ${errorText(err)}`);
    return;
  }
  try {
    if (snap.schema === 0) {
      r.say("warn", `database ${shown}: PostgreSQL ${snap.serverVersion}, no secretd schema yet (created by the first server start)`);
      return;
    }
    const newer = snap.schema > snap.schemaKnown ? `; newer than this build's ${snap.schemaKnown}: use the servers' build` : "";
    r.say(newer === "" ? "ok" : "warn", `database ${shown}: PostgreSQL ${snap.serverVersion}, schema ${snap.schema}${newer}, ${snap.secrets} secrets, ${snap.versions} versions`);
    r.say("note", "integrity_check is SQLite's: PostgreSQL checks its own pages (initdb --data-checksums; the amcheck extension verifies indexes)");
    for (const m of snap.missingCurrent) r.say("FAIL", `current version missing: tenant "${m.tenant}" mesh "${m.mesh}" secret "${m.name}" version ${m.version}`);
    if (snap.missingCurrent.length === 0) r.say("ok", "every secret's current version is stored");
    const keyring = keyringOf(r, config, snap.versions);
    if (keyring === undefined) return;
    await checkBlobs(r, keyring, snap.versionsIn(), snap.versions);
    if (newer !== "") return;
    const storage = await openStorage(config, { poolSize: 2 });
    try {
      reportMacs(r, await checkRowMacs(storage, keyring));
    } finally {
      await storage.close();
    }
  } finally {
    await snap.close();
  }
}

/** Settings whose empty default means a path derived from the data dir. */
function derived(key: string, config: Config | undefined): string | undefined {
  if (config === undefined) return undefined;
  if (key === "kekFile") return config.kekFile;
  if (key === "jwtHs256SecretFile" && config.jwt.hs256IsDevKey) return config.jwt.hs256SecretFile;
  if (key === "jwtAlgorithms") return config.jwt.algorithms.join(",");
  return undefined;
}

async function doctor(opts: Record<string, string | undefined>): Promise<void> {
  const format = opts.output === "json" || opts.output === "yaml" ? opts.output : "text";
  const r = report(format === "text");
  const flags = Object.fromEntries(Object.entries(opts).filter((e): e is [string, string] => typeof e[1] === "string"));
  let config: Config | undefined;
  let configError: unknown;
  try {
    config = configFrom(opts);
  } catch (err) {
    configError = err;
  }
  const settings = effectiveSettings(flags, process.env).map((s) => {
    const shown = s.value === "" && s.source === "default" ? (derived(s.key, config) ?? "") : s.value;
    return { key: s.key, value: shown, source: s.source, ...(s.source === "env" ? { env: s.env } : {}) };
  });
  if (format === "text") {
    process.stdout.write("configuration (flag > env > file > default):\n");
    for (const s of settings) process.stdout.write(`  ${s.key.padEnd(20)} ${s.value === "" ? '""' : s.value}  (${s.source}${s.env ? ` ${s.env}` : ""})\n`);
  }
  if (config === undefined) {
    r.say("FAIL", `configuration: ${errorText(configError)}`);
  } else {
    r.say("ok", "configuration is valid");
    checkFiles(r, config);
    await (config.databaseUrl === "" ? checkSqlite(r, config) : checkPostgres(r, config));
  }
  if (format === "text") {
    process.stdout.write(r.failed === 0 ? "no problems found\n" : `${r.failed} problem${r.failed === 1 ? "" : "s"} found\n`);
  } else {
    process.stdout.write(renderDoc({ configuration: settings, checks: r.checks, problems: r.failed }, format));
  }
  if (r.failed > 0) process.exitCode = 1;
}

export function registerDoctor(program: Command): void {
  const cmd = program
    .command("doctor")
    .description("check a data dir: effective configuration (secrets masked), key file permissions, database integrity, every stored value opens, row MACs")
    .addOption(new Option("-o, --output <format>", "text: one line per check; json or yaml: one document (configuration, checks, problems)").choices(["text", "json", "yaml"]).default("text"));
  withExample(
    cmd,
    "secretd doctor --data-dir /var/lib/secretd --kek-file /etc/secretd/kek.json",
    "secretd doctor --database-url postgres://secretd@db.internal/secretd --kek-file /etc/secretd/kek.json -o json",
  );
  withConfigOptions(cmd).action(async (opts: Record<string, string | undefined>) => {
    try {
      await doctor(opts);
    } catch (err) {
      printError(err);
      process.exitCode = 1;
    }
  });
}
