/**
 * `secretd doctor`: checks a data dir the way an operator would before trusting it. It
 * echoes the effective configuration (URL credentials masked; no setting holds a key
 * itself, only paths to key files), checks that key files are owner-only, runs SQLite's
 * integrity_check, opens every stored version with the keyring and checks every row MAC
 * (as a read would), naming each one that fails. Read-only, so it is safe next to a running server. Exit 1 when anything failed.
 */
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { DB_FILE } from "../app.js";
import { effectiveSettings, type Config } from "../config.js";
import { secretAad } from "../crypto/aad.js";
import { decodeData } from "../crypto/data-codec.js";
import { openVersion } from "../crypto/envelope.js";
import { loadKeyring } from "../crypto/keyring.js";
import { SecretdError } from "../domain/errors.js";
import { auditRowMacs } from "../domain/row-mac-maintenance.js";
import { integrityProblems, macRowsOf, rowMacState, sealedVersions } from "../storage/sqlite/sqlite-maintenance.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { printError } from "./cli-errors.js";
import { withExample } from "./help.js";
import { progress } from "./progress.js";

type Verdict = "ok" | "warn" | "FAIL";

interface Report {
  failed: number;
  /** `counted: false` for a summary of problems already reported one by one. */
  say(verdict: Verdict, text: string, counted?: boolean): void;
}

function report(): Report {
  return {
    failed: 0,
    say(verdict, text, counted = true) {
      if (verdict === "FAIL" && counted) this.failed++;
      process.stdout.write(`${verdict.padEnd(5)} ${text}\n`);
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
  else if ((st.mode & 0o077) !== 0) r.say("FAIL", `${what} ${file}: mode ${mode(st.mode)} lets group or others read it (run chmod 600 ${file})`);
  else r.say("ok", `${what} ${file}: mode ${mode(st.mode)}`);
}

function checkFiles(r: Report, config: Config): void {
  if (existsSync(config.dataDir)) {
    const m = statSync(config.dataDir).mode;
    r.say((m & 0o077) === 0 ? "ok" : "warn", `data dir ${config.dataDir}: mode ${mode(m)}${(m & 0o077) === 0 ? "" : " (0700 recommended)"}`);
  } else {
    r.say("FAIL", `data dir ${config.dataDir}: does not exist`);
  }
  checkKeyFile(r, "KEK file", config.kekFile, true);
  if (config.jwt.hs256SecretFile !== "") checkKeyFile(r, "HS256 secret file", config.jwt.hs256SecretFile, !config.jwt.hs256IsDevKey);
  if (config.tls !== undefined) checkKeyFile(r, "TLS key", config.tls.key, true);
  const db = path.join(config.dataDir, DB_FILE);
  if (existsSync(db)) checkKeyFile(r, "database", db, true);
}

function errorText(err: unknown): string {
  return err instanceof SecretdError ? `${err.code}: ${err.message}` : "unexpected error";
}

/** Opens every version with the keyring; a version that fails is named, never shown. */
function checkBlobs(r: Report, config: Config, dbFile: string): void {
  let keyring;
  try {
    keyring = loadKeyring(config.kekFile, { create: false, warn: () => {} });
  } catch (err) {
    r.say("FAIL", `keyring: ${errorText(err)}; no stored value can be checked`);
    return;
  }
  const rows = [...sealedVersions(dbFile)];
  const bar = progress("opening stored versions");
  let opened = 0;
  const failures: string[] = [];
  rows.forEach((row, i) => {
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
    bar.update(`${i + 1} of ${rows.length}`);
  });
  bar.done();
  for (const f of failures) r.say("FAIL", `does not open: ${f}`);
  const kekIds = keyring.keys.map((k) => k.id).join(", ");
  r.say(failures.length === 0 ? "ok" : "FAIL", `opened ${opened} of ${rows.length} stored versions with the keyring (KEKs ${kekIds}; active ${keyring.active.id})`, false);
}

/** Every row MAC checked as a read checks it; a secret whose rows fail is named with what failed. */
function checkRowMacs(r: Report, config: Config, dbFile: string): void {
  const state = rowMacState(dbFile);
  if (state !== "present") {
    // A server gives them at its next start; a mark on a database that holds MACs is refused there (tampering).
    r.say("warn", `row MACs: ${state === "absent" ? "none yet (a database of an older secretd)" : "backfill pending"}; the next server start gives every row its MAC`);
    return;
  }
  let keyring;
  try {
    keyring = loadKeyring(config.kekFile, { create: false, warn: () => {} });
  } catch (err) {
    r.say("FAIL", `keyring: ${errorText(err)}; no row MAC can be checked`);
    return;
  }
  const bar = progress("checking row MACs");
  let secrets = 0;
  let bad = 0;
  for (const rows of macRowsOf(dbFile)) {
    secrets++;
    const problems = auditRowMacs(keyring, rows);
    if (problems.length > 0) {
      bad++;
      const s = rows.secret;
      r.say("FAIL", `rows do not authenticate: tenant "${s.tenant}" mesh "${s.mesh}" secret "${s.name}" (uid ${s.uid}): ${problems.join("; ")}`);
    }
    bar.update(`${secrets}`);
  }
  bar.done();
  r.say(bad === 0 ? "ok" : "FAIL", `checked the row MACs of ${secrets} secrets: ${secrets - bad} authenticate${bad === 0 ? "" : `, ${bad} do not`}`, false);
}

/** Settings whose empty default means a path derived from the data dir. */
function derived(key: string, config: Config | undefined): string | undefined {
  if (config === undefined) return undefined;
  if (key === "kekFile") return config.kekFile;
  if (key === "jwtHs256SecretFile" && config.jwt.hs256IsDevKey) return config.jwt.hs256SecretFile;
  if (key === "jwtAlgorithms") return config.jwt.algorithms.join(",");
  return undefined;
}

function doctor(opts: Record<string, string | undefined>): void {
  const r = report();
  const flags = Object.fromEntries(Object.entries(opts).filter((e): e is [string, string] => typeof e[1] === "string"));
  let config: Config | undefined;
  let configError: unknown;
  try {
    config = configFrom(opts);
  } catch (err) {
    configError = err;
  }
  process.stdout.write("configuration (flag > env > file > default):\n");
  for (const s of effectiveSettings(flags, process.env)) {
    const shown = s.value === "" && s.source === "default" ? (derived(s.key, config) ?? "") : s.value;
    process.stdout.write(`  ${s.key.padEnd(20)} ${shown === "" ? '""' : shown}  (${s.source}${s.source === "env" ? ` ${s.env}` : ""})\n`);
  }
  if (config === undefined) {
    r.say("FAIL", `configuration: ${errorText(configError)}`);
    process.exitCode = 1;
    return;
  }
  r.say("ok", "configuration is valid");
  checkFiles(r, config);
  const dbFile = path.join(config.dataDir, DB_FILE);
  if (!existsSync(dbFile)) {
    r.say("warn", `database ${dbFile}: does not exist yet (created on the first start)`);
  } else {
    const problems = integrityProblems(dbFile);
    if (problems.length === 0) r.say("ok", `database ${dbFile}: integrity_check ok`);
    for (const p of problems.slice(0, 20)) r.say("FAIL", `database ${dbFile}: integrity_check: ${p}`);
    checkBlobs(r, config, dbFile);
    checkRowMacs(r, config, dbFile);
  }
  process.stdout.write(r.failed === 0 ? "no problems found\n" : `${r.failed} problem${r.failed === 1 ? "" : "s"} found\n`);
  if (r.failed > 0) process.exitCode = 1;
}

export function registerDoctor(program: Command): void {
  const cmd = program
    .command("doctor")
    .description("check a data dir: effective configuration (secrets masked), key file permissions, database integrity, every stored value opens, every row MAC checks");
  withExample(cmd, "secretd doctor --data-dir /var/lib/secretd --kek-file /etc/secretd/kek.json");
  withConfigOptions(cmd).action((opts: Record<string, string | undefined>) => {
    try {
      doctor(opts);
    } catch (err) {
      printError(err);
      process.exitCode = 1;
    }
  });
}
