/**
 * bin/secretd, the `secretd` command npm installs and `npm start` runs: it must find
 * dist/main.js through the symlinks npm makes, start node with the V8 flags secretd is
 * measured with (and nothing else), keep them off NODE_OPTIONS (which programs started
 * by `secretd run` would inherit), and pass arguments and exit codes through.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const LAUNCHER = path.resolve("bin/secretd");
const dir = mkdtempSync(path.join(os.tmpdir(), "secretd-launcher-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the launcher (or a link to it) with a preload that records what node was started with. */
function launch(cmd: string, args: readonly string[]): { status: number | null; out: string; err: string; seen: { execArgv: string[]; nodeOptions: string; argv: string[] } } {
  const record = path.join(dir, `seen-${Math.random().toString(36).slice(2)}.json`);
  const preload = path.join(dir, "record.cjs");
  writeFileSync(
    preload,
    `require("node:fs").writeFileSync(${JSON.stringify(record)}, JSON.stringify({ execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS, argv: process.argv.slice(1) }));\n`,
  );
  const nodeOptions = `--require ${preload}`;
  const r = spawnSync(cmd, args, { env: { PATH: process.env.PATH, NODE_OPTIONS: nodeOptions }, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, out: r.stdout, err: r.stderr, seen: JSON.parse(readFileSync(record, "utf8")) };
}

describe("bin/secretd", () => {
  it("runs dist/main.js with the young generation flag and --expose-gc (the idle collection), on node's command line only", () => {
    const r = launch(LAUNCHER, ["--help"]);
    expect(r.status).toBe(0);
    expect(r.out).toContain("Usage: secretd");
    expect(r.seen.execArgv).toEqual(["--max-semi-space-size=4", "--expose-gc"]);
    expect(r.seen.nodeOptions).toBe(`--require ${path.join(dir, "record.cjs")}`);
    expect(r.seen.argv[0]).toBe(path.resolve("dist/main.js"));
  });

  it("finds the package through an absolute symlink and a chain of relative ones", () => {
    const bin = mkdtempSync(path.join(dir, "bin-"));
    symlinkSync(LAUNCHER, path.join(bin, "abs"));
    symlinkSync(path.relative(bin, LAUNCHER), path.join(bin, "rel"));
    symlinkSync("rel", path.join(bin, "secretd"));
    for (const link of ["abs", "secretd"]) {
      const r = launch(path.join(bin, link), ["--help"]);
      expect(r.status, r.err).toBe(0);
      expect(r.seen.argv[0]).toBe(path.resolve("dist/main.js"));
    }
  });

  it("passes arguments with spaces and the exit code through", () => {
    const r = launch(LAUNCHER, ["get", "--server", "127.0.0.1:1", "--mesh", "a mesh", "x"]);
    expect(r.seen.argv.slice(1)).toEqual(["get", "--server", "127.0.0.1:1", "--mesh", "a mesh", "x"]);
    const direct = spawnSync(process.execPath, [path.resolve("dist/main.js"), "--no-such-option"], { encoding: "utf8" });
    const viaLauncher = launch(LAUNCHER, ["--no-such-option"]);
    expect(direct.status).not.toBe(0);
    expect(viaLauncher.status).toBe(direct.status);
    expect(viaLauncher.err).toBe(direct.stderr);
  });
});
