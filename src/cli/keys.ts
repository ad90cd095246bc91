/**
 * `secretd keys init` writes a new keyring file (one fresh KEK, 0600) for a new deployment
 * and never replaces one. `secretd keys rotate` and `secretd keys rewrap`: KEK rotation, safe while servers run
 * on the same data: SQLite in WAL mode (or PostgreSQL, with --database-url) lets this
 * second process write in short transactions between the servers', and the servers
 * follow the keyring file (KeyringHolder), so reads and writes keep succeeding throughout.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { DB_FILE, openStorage } from "../storage/open-storage.js";
import { KEYRING_POLL_MS, KeyringHolder } from "../crypto/keyring-holder.js";
import { createKeyring, rotateKeyring } from "../crypto/keyring.js";
import { rewrapAll } from "../domain/kek-rewrap.js";
import { SecretdError, invalid } from "../errors.js";
import { backfillRowMacs, rekeyRowMacs } from "../domain/row-mac-maintenance.js";
import type { Storage } from "../storage/storage.js";
import { configFrom, withConfigOptions, type SettingKey } from "./config-options.js";
import { withExample } from "../client/help.js";
import { progress } from "./progress.js";

/** Servers poll the keyring file every KEYRING_POLL_MS; give them a few polls to notice. */
const SETTLE_MS = 3 * KEYRING_POLL_MS;
/** Bounds the re-scans when old-KEK blobs keep appearing (a server on another keyring file). */
const MAX_PASSES = 200;
/** Row-MAC passes after the first, while one still finds MACs to re-key. */
const MAX_MAC_PASSES = 5;

function batchSize(v: string | undefined): number {
  const n = Number(v ?? "100");
  if (!Number.isInteger(n) || n < 1 || n > 10_000) throw invalid("--batch", "must be an integer from 1 to 10000");
  return n;
}

async function rewrapCommand(opts: Record<string, string | undefined>, rotate: boolean): Promise<void> {
  const config = configFrom(opts);
  const batch = batchSize(opts.batch);
  const started = Date.now();
  const dbFile = path.join(config.dataDir, DB_FILE);
  // Checked before the keyring is touched: a wrong --data-dir must not get a KEK file of its own.
  if (config.databaseUrl === "" && !existsSync(dbFile)) {
    throw new SecretdError("FAILED_PRECONDITION", `no database at ${dbFile}: check --data-dir (keys ${rotate ? "rotate" : "rewrap"} works on an existing SQLite data dir)`);
  }
  if (rotate) {
    const ring = rotateKeyring(config.kekFile);
    process.stdout.write(`added KEK ${ring.active.id} to ${config.kekFile}; new data keys are wrapped by it\n`);
  }
  const warn = (msg: string): void => void process.stderr.write(`secretd: ${msg}\n`);
  const keys = new KeyringHolder(config.kekFile, { create: false, watch: false, info: () => {}, warn });
  // Every replica must share this keyring file (or get the same one) for the rotation to reach it.
  const storage: Storage = await openStorage(config, { poolSize: 2 });
  const bar = progress("rewrapping data keys");
  try {
    const r = await rewrapAll(storage, keys, {
      batchSize: batch,
      settleUntil: started + SETTLE_MS,
      rescanMs: KEYRING_POLL_MS / 4,
      maxPasses: MAX_PASSES,
      onBatch: (p) => bar.update(`pass ${p.pass}: ${p.examined} examined, ${p.rewrapped} rewrapped`),
    });
    bar.done();
    process.stdout.write(
      `rewrapped ${r.rewrapped} data keys to KEK ${r.activeKekId} ` +
        `(${r.rewrappedLate} of them written by a server during the rotation, found by the final re-scan; ${r.passes} passes)\n`,
    );
    // Row MACs next: by now the servers seal with the new KEK (the rewrap above waited for
    // them), so a pass or two finds every MAC made under an older one.
    await backfillRowMacs(storage, keys);
    let rekeyed = 0;
    let m = await rekeyRowMacs(storage, keys, batch);
    rekeyed += m.rekeyed;
    for (let pass = 1; pass < MAX_MAC_PASSES && (m.rekeyed > 0 || m.missed > 0); pass++) {
      m = await rekeyRowMacs(storage, keys, batch);
      rekeyed += m.rekeyed;
    }
    process.stdout.write(`re-keyed ${rekeyed} row MACs to KEK ${keys.current().active.id}\n`);
    for (const u of r.unreadable) {
      warn(`version ${u.version} of secret "${u.name}" (tenant "${u.tenant}", mesh "${u.mesh}", uid ${u.uid}) could not be unwrapped and was left as it is`);
    }
    for (const u of m.unauthenticated) {
      warn(`secret "${u.name}" (tenant "${u.tenant}", mesh "${u.mesh}", uid ${u.uid}) has a row whose MAC does not check; its MACs were left as they are`);
    }
    if (r.unreadable.length > 0 || m.unauthenticated.length > 0) {
      throw new SecretdError(
        "DATA_LOSS",
        `${r.unreadable.length} data keys could not be rewrapped and ${m.unauthenticated.length} secrets' row MACs could not be re-keyed; keep the older KEKs in ${config.kekFile}`,
      );
    }
  } finally {
    bar.done();
    await storage.close();
  }
}

/** keys init: an existing file is the caller's input, refused as such (exit 2), never replaced. */
function initCommand(opts: Record<string, string | undefined>): void {
  const config = configFrom(opts);
  let ring;
  try {
    ring = createKeyring(config.kekFile);
  } catch (err) {
    if (err instanceof SecretdError && err.code === "ALREADY_EXISTS") throw invalid("--kek-file", err.message);
    throw err;
  }
  process.stdout.write(
    `created KEK file ${config.kekFile} (mode 0600) with KEK ${ring.active.id}; back it up apart from the database: ` +
      "secrets sealed under it cannot be read without it\n",
  );
}

/** The settings a key tool reads: where the database (SQLite in the data dir, or PostgreSQL) and the keyring are. */
const KEY_SETTINGS: readonly SettingKey[] = ["dataDir", "databaseUrl", "databaseStatementTimeout", "kekFile"];

export function registerKeys(program: Command): void {
  const keys = program.command("keys").description("key-encryption key (KEK) management");
  const init = withConfigOptions(
    keys
      .command("init")
      .description("create a new keyring file holding one fresh KEK (mode 0600, missing parent directories 0700); refuses an existing file. Only for a new deployment: restored or existing data needs the keyring it was sealed under"),
    ["dataDir", "kekFile"],
  );
  withExample(init, "secretd keys init --kek-file /etc/secretd/kek.json").action((opts: Record<string, string | undefined>) => initCommand(opts));
  const rotate = withConfigOptions(
    keys
      .command("rotate")
      .description("add a new active KEK to the keyring, rewrap every stored data key and re-key every row MAC with it (safe while servers run on the data dir or PostgreSQL database)")
      .option("--batch <n>", "data keys rewrapped per transaction", "100"),
    KEY_SETTINGS,
  );
  withExample(rotate, "secretd keys rotate --data-dir /var/lib/secretd").action((opts: Record<string, string | undefined>) => rewrapCommand(opts, true));
  const rewrap = withConfigOptions(
    keys
      .command("rewrap")
      .description("rewrap data keys and re-key row MACs still under an older KEK with the active one (finishes an interrupted rotation)")
      .option("--batch <n>", "data keys rewrapped per transaction", "100"),
    KEY_SETTINGS,
  );
  withExample(rewrap, "secretd keys rewrap --data-dir /var/lib/secretd").action((opts: Record<string, string | undefined>) => rewrapCommand(opts, false));
}
