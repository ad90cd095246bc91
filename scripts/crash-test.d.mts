/** Types of scripts/crash-test.mjs, for test/e2e/crash.test.ts (the script is plain ESM). */
export interface CrashTestOptions {
  /** Kills (default 10). */
  rounds?: number;
  /** Concurrent writers, each with its own secrets (default 8). */
  workers?: number;
  /** Earliest kill after the load starts, ms (default 100). */
  minRunMs?: number;
  /** Latest kill after the load starts, ms (default 1500). */
  maxRunMs?: number;
  /** `serve --workers N` (default 1); the whole process tree is killed each round. */
  serverWorkers?: number;
  /** PostgreSQL instead of SQLite: every replica serves from this (empty) database. */
  databaseUrl?: string;
  /** `secretd serve` processes on that one database (default 1; more need databaseUrl), all killed at once. */
  replicas?: number;
  /** Kept when given; else a temp dir, removed at the end. */
  dataDir?: string;
  log?: (line: string) => void;
}

export interface CrashTestResult {
  rounds: number;
  acknowledged: { creates: number; updates: number; total: number };
  /** Writes in flight at a kill that turned out fully present / fully absent. */
  unacknowledged: { present: number; absent: number };
  lost: number;
  halfPresent: number;
  /** "ok", or the first messages of PRAGMA integrity_check. */
  integrity: string;
  /** Calls that failed while the server was still up (expected 0). */
  errorsBeforeKill: number;
  /** Secrets checked after the last restart. */
  secrets: number;
  problems: string[];
}

export function runCrashTest(opts?: CrashTestOptions): Promise<CrashTestResult>;
