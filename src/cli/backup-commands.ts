/**
 * `secretd backup FILE` and `secretd restore FILE`. A backup is a consistent online copy
 * of the SQLite database taken while a server serves (SQLite's backup API): values stay
 * sealed and the KEK is never in it — it lives in its own file, which must be kept (and
 * backed up) apart. Restore refuses to run under a live server at all, and over a data
 * dir that already holds secrets unless --force. Both are SQLite's: on PostgreSQL the
 * database's own tools (pg_dump / pg_restore, base backups) do this, and both verbs refuse
 * a --database-url rather than copy the wrong thing.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, openSync, renameSync, rmSync } from "node:fs";
import { makeDirs } from "../make-dirs.js";
import path from "node:path";
import type { Command } from "commander";
import { DB_FILE } from "../storage/open-storage.js";
import { maskUrl, type Config } from "../config.js";
import { SecretdError, invalid } from "../errors.js";
import { openSqliteDatabase } from "../storage/sqlite/sqlite-database.js";
import { backupDatabase, databaseCounts, integrityProblems, isDatabaseInUse, type DatabaseCounts } from "../storage/sqlite/sqlite-maintenance.js";
import { checkSchema } from "../storage/sqlite/sqlite-schema.js";
import { printError } from "../client/cli-errors.js";
import { configFrom, withConfigOptions } from "./config-options.js";
import { withExample } from "../client/help.js";

function describeCounts(c: DatabaseCounts): string {
  return `${c.secrets} secrets, ${c.versions} versions, ${c.grants} grants (schema ${c.schema})`;
}

function sqliteOnly(verb: "backup" | "restore", config: Config): void {
  if (config.databaseUrl === "") return;
  const tool = verb === "backup" ? "pg_dump -Fc -f FILE" : "pg_restore -d DATABASE FILE";
  throw invalid(
    "--database-url",
    `secretd ${verb} works on the SQLite data dir only; with PostgreSQL (${maskUrl(config.databaseUrl)}) use ${tool}: values stay sealed in the dump, and the KEK file (${config.kekFile}) must be kept apart`,
  );
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

async function backup(file: string, opts: Record<string, string | boolean | undefined>): Promise<void> {
  const config = configFrom(opts);
  sqliteOnly("backup", config);
  const dbFile = path.join(config.dataDir, DB_FILE);
  if (!existsSync(dbFile)) throw new SecretdError("FAILED_PRECONDITION", `no database at ${dbFile} (check --data-dir)`);
  const dest = path.resolve(file);
  if (existsSync(dest) && opts.force !== true) throw invalid("FILE", `${dest} exists (add --force to replace it)`);
  if (!existsSync(path.dirname(dest))) throw invalid("FILE", `directory ${path.dirname(dest)} does not exist`);
  // Staged next to the target and renamed, so FILE is only ever a complete, checked copy.
  const partial = `${dest}.partial`;
  rmSync(partial, { force: true });
  // Created owner-only before a byte is copied into it.
  closeSync(openSync(partial, "wx", 0o600));
  try {
    const counts = await backupDatabase(dbFile, partial);
    chmodSync(partial, 0o600);
    renameSync(partial, dest);
    fsyncDir(path.dirname(dest));
    process.stdout.write(`backed up ${describeCounts(counts)} to ${dest}; values stay sealed: restoring needs the KEK file ${config.kekFile}, which is not in the backup\n`);
  } finally {
    rmSync(partial, { force: true });
    rmSync(`${partial}-journal`, { force: true });
  }
}

async function restore(file: string, opts: Record<string, string | boolean | undefined>): Promise<void> {
  const config = configFrom(opts);
  sqliteOnly("restore", config);
  const source = path.resolve(file);
  if (!existsSync(source)) throw invalid("FILE", `${source} does not exist`);
  const problems = integrityProblems(source);
  if (problems.length > 0) throw new SecretdError("DATA_LOSS", `${source} fails integrity_check: ${problems.slice(0, 3).join("; ")}`);
  const incoming = databaseCounts(source);
  // Checked before the data dir is touched: an object secretd did not make (a trigger runs on every write) is never restored.
  const schema = checkSchema(source);
  if (schema.unknownMigrations.length > 0) {
    throw new SecretdError("FAILED_PRECONDITION", `${source} was made by a newer secretd (migrations ${schema.unknownMigrations.join(", ")} are unknown to this build): restore it with that build`);
  }
  if (schema.differences.length > 0) {
    throw new SecretdError(
      "FAILED_PRECONDITION",
      `${source} does not have the schema secretd's migrations make, so it is not restored: ${schema.differences.slice(0, 5).join("; ")}` +
        (schema.differences.length > 5 ? `; and ${schema.differences.length - 5} more` : ""),
    );
  }
  const dbFile = path.join(config.dataDir, DB_FILE);
  if (existsSync(dbFile)) {
    if (isDatabaseInUse(dbFile)) {
      throw new SecretdError("FAILED_PRECONDITION", `${dbFile} is in use (a server or another secretd command has it open): stop it first; restore never runs under a live server, not even with --force`);
    }
    const current = databaseCounts(dbFile);
    if (current.secrets + current.grants > 0 && opts.force !== true) {
      throw new SecretdError("FAILED_PRECONDITION", `${config.dataDir} is not empty (${describeCounts(current)}): add --force to replace it`);
    }
  }
  makeDirs(config.dataDir);
  const staged = path.join(config.dataDir, `${DB_FILE}.restore`);
  rmSync(staged, { force: true });
  closeSync(openSync(staged, "wx", 0o600));
  // The copy goes through SQLite's backup API too: the source may itself be in WAL mode.
  await backupDatabase(source, staged);
  // A WAL or shared-memory file left by the old database would be replayed onto the new one.
  for (const suffix of ["-wal", "-shm", "-journal"]) rmSync(`${dbFile}${suffix}`, { force: true });
  renameSync(staged, dbFile);
  fsyncDir(config.dataDir);
  // Opened the way the server opens it: WAL, synchronous=FULL, pending migrations applied.
  openSqliteDatabase(dbFile).close();
  if (!existsSync(config.kekFile)) {
    process.stderr.write(`secretd: warning: no KEK file at ${config.kekFile}: the restored values open only with the keyring they were sealed under\n`);
  }
  process.stdout.write(`restored ${describeCounts(incoming)} into ${dbFile}; run secretd doctor to check that every value opens with ${config.kekFile}\n`);
}

/** Runs a maintenance verb, printing its error the one way (exit 2 bad usage, 1 otherwise). */
function run(fn: (file: string, opts: Record<string, string | boolean | undefined>) => Promise<void>) {
  return async (file: string, opts: Record<string, string | boolean | undefined>): Promise<void> => {
    try {
      await fn(file, opts);
    } catch (err) {
      process.exitCode = printError(err);
    }
  };
}

export function registerBackupCommands(program: Command): void {
  const backupCmd = program
    .command("backup")
    .description("consistent online copy of the database (safe while a server runs); values stay sealed, the KEK is not in it")
    .argument("<file>", "where to write the copy (mode 0600)")
    .option("--force", "replace FILE if it exists");
  withExample(backupCmd, "secretd backup --data-dir /var/lib/secretd /backups/secretd-$(date +%F).db");
  withConfigOptions(backupCmd).action(run(backup));
  const restoreCmd = program
    .command("restore")
    .description("replace the data dir's database with a backup (the server must be stopped)")
    .argument("<file>", "a file written by secretd backup")
    .option("--force", "replace a database that already holds secrets");
  withExample(restoreCmd, "secretd restore --data-dir /var/lib/secretd /backups/secretd-2026-12-03.db && secretd doctor --data-dir /var/lib/secretd");
  withConfigOptions(restoreCmd).action(run(restore));
}
