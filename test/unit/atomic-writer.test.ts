import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AtomicWriter, MAX_TOTAL_BYTES, setName, type ProjectedFile } from "../../src/sidecar/atomic-writer.js";
import { secretdErrorOf } from "../helpers/errors.js";

let dir: string;
let outside: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), "secretd-writer-"));
  outside = mkdtempSync(path.join(os.tmpdir(), "secretd-outside-"));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
});

const file = (p: string, value: string, mode = 0o400): ProjectedFile => ({ path: p, mode, value: Buffer.from(value) });

const errorOf = secretdErrorOf;

function sets(): string[] {
  return readdirSync(dir).filter((n) => /^\.\.\d{4}_/.test(n));
}

describe("atomic writer", () => {
  it("when a set is written, then it lands in a timestamped dir behind ..data with links per top-level entry and the given modes", () => {
    const w = new AtomicWriter(dir);
    const r = w.write([file("db/password", "pw1", 0o440), file("db/user", "app"), file("token", "t1", 0o644)]);
    expect(r.changed).toBe(true);
    expect(r.set).toMatch(/^\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d{9}$/);
    expect(readlinkSync(path.join(dir, "..data"))).toBe(r.set);
    expect(readlinkSync(path.join(dir, "db"))).toBe("..data/db");
    expect(readlinkSync(path.join(dir, "token"))).toBe("..data/token");
    expect(readFileSync(path.join(dir, "db/password"), "utf8")).toBe("pw1");
    expect(readFileSync(path.join(dir, "token"), "utf8")).toBe("t1");
    expect(statSync(path.join(dir, "db/password")).mode & 0o777).toBe(0o440);
    expect(statSync(path.join(dir, "db/user")).mode & 0o777).toBe(0o400);
    expect(statSync(path.join(dir, "token")).mode & 0o777).toBe(0o644);
    // 0700, opened up only as far as a file beneath asks: group read (0440) → 0750; others read (0644) → 0755.
    expect(statSync(path.join(dir, r.set, "db")).mode & 0o777).toBe(0o750);
    expect(statSync(path.join(dir, r.set)).mode & 0o777).toBe(0o755);
    expect(sets()).toEqual([r.set]);
  });

  it("when only owner-readable files are written, then their directories are 0700", () => {
    const r = new AtomicWriter(dir).write([file("a/b/c", "x")]);
    expect(statSync(path.join(dir, r.set)).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, r.set, "a")).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dir, r.set, "a/b")).mode & 0o777).toBe(0o700);
  });

  it("when a new set replaces the old, then ..data moves, the old set is removed and links of dropped entries go", () => {
    const w = new AtomicWriter(dir);
    const first = w.write([file("db/password", "pw1"), file("old", "x")]);
    const second = w.write([file("db/password", "pw2"), file("new", "y")]);
    expect(second.changed).toBe(true);
    expect(second.set).not.toBe(first.set);
    expect(readFileSync(path.join(dir, "db/password"), "utf8")).toBe("pw2");
    expect(readFileSync(path.join(dir, "new"), "utf8")).toBe("y");
    expect(() => lstatSync(path.join(dir, "old"))).toThrow();
    expect(sets()).toEqual([second.set]);
  });

  it("when the same set is written again, even by a new writer, then nothing changes on disk", () => {
    const files = [file("db/password", "pw1"), file("token", "t", 0o600)];
    const first = new AtomicWriter(dir).write(files);
    const again = new AtomicWriter(dir).write(files);
    expect(again).toEqual({ changed: false, set: first.set });
    expect(readlinkSync(path.join(dir, "..data"))).toBe(first.set);
  });

  it("when only a mode or a byte differs, then the set is rewritten", () => {
    const w = new AtomicWriter(dir);
    w.write([file("a", "x", 0o400)]);
    expect(w.write([file("a", "x", 0o440)]).changed).toBe(true);
    expect(w.write([file("a", "y", 0o440)]).changed).toBe(true);
    expect(w.write([file("a", "y", 0o440), file("b", "")]).changed).toBe(true);
    expect(w.write([file("a", "y", 0o440)]).changed).toBe(true);
    expect(w.write([file("a", "y", 0o440)]).changed).toBe(false);
  });

  it("when the empty set is written, then every value and every link is gone but ..data stays valid", () => {
    const w = new AtomicWriter(dir);
    w.write([file("db/password", "pw1"), file("token", "t")]);
    const r = w.write([]);
    expect(r.changed).toBe(true);
    expect(readdirSync(dir).sort()).toEqual(["..data", r.set].sort());
    expect(readdirSync(path.join(dir, "..data"))).toEqual([]);
  });

  it("when other files live in DIR, then they are left alone", () => {
    writeFileSync(path.join(dir, "README"), "mine");
    const w = new AtomicWriter(dir);
    w.write([file("a", "x")]);
    w.write([]);
    expect(readFileSync(path.join(dir, "README"), "utf8")).toBe("mine");
  });

  it("when a crash left an unfinished set behind, then the next write removes it", () => {
    const stale = setName(new Date(0), 1);
    mkdirSync(path.join(dir, stale));
    writeFileSync(path.join(dir, stale, "half"), "x");
    const r = new AtomicWriter(dir).write([file("a", "x")]);
    expect(sets()).toEqual([r.set]);
  });

  it.each([
    ["../escape"],
    ["a/../../escape"],
    ["/etc/passwd"],
    ["a//b"],
    ["./a"],
    ["..data"],
    ["a/..hidden"],
    [""],
  ])("when a path is %j, then the set is refused before anything is written", (p) => {
    const e = errorOf(() => new AtomicWriter(dir).write([file(p, "v")]));
    expect(e.code).toBe("INVALID_ARGUMENT");
    expect(readdirSync(dir)).toEqual([]);
    expect(readdirSync(outside)).toEqual([]);
  });

  it("when one path is a file and a directory of another, then the set is refused", () => {
    expect(errorOf(() => new AtomicWriter(dir).write([file("a", "1"), file("a/b", "2")])).code).toBe("INVALID_ARGUMENT");
  });

  it("when a set is over the size limit, then it is refused with RESOURCE_EXHAUSTED and the old set stays", () => {
    const w = new AtomicWriter(dir);
    w.write([file("a", "keep")]);
    const big = { path: "big", mode: 0o400, value: Buffer.alloc(MAX_TOTAL_BYTES + 1) };
    expect(errorOf(() => w.write([big])).code).toBe("RESOURCE_EXHAUSTED");
    const many = Array.from({ length: 4097 }, (_, i) => file(`f${i}`, ""));
    expect(errorOf(() => w.write(many)).code).toBe("RESOURCE_EXHAUSTED");
    expect(readFileSync(path.join(dir, "a"), "utf8")).toBe("keep");
  });

  it("when a symlink to elsewhere is planted where a top-level entry goes, then nothing is written through it", () => {
    symlinkSync(outside, path.join(dir, "db"));
    const e = errorOf(() => new AtomicWriter(dir).write([file("db/password", "v")]));
    expect(e.code).toBe("FAILED_PRECONDITION");
    expect(e.message).toContain("db");
    expect(readdirSync(outside)).toEqual([]);
  });

  it("when ..data is replaced by a symlink out of DIR, then the writer refuses", () => {
    symlinkSync(outside, path.join(dir, "..data"));
    expect(errorOf(() => new AtomicWriter(dir).write([file("a", "v")])).code).toBe("FAILED_PRECONDITION");
    expect(readdirSync(outside)).toEqual([]);
  });

  it("when a symlink is planted inside the current set, then the writer refuses", () => {
    const w = new AtomicWriter(dir);
    const r = w.write([file("db/password", "v"), file("db/user", "u")]);
    rmSync(path.join(dir, r.set, "db/user"), { force: true });
    symlinkSync(path.join(outside, "x"), path.join(dir, r.set, "db/user"));
    expect(errorOf(() => w.write([file("db/password", "v"), file("db/user", "u")])).code).toBe("FAILED_PRECONDITION");
  });

  it("when DIR is missing and its parent exists, then checkDir creates it 0700; when the parent is missing too, then it says so naming --dir", () => {
    new AtomicWriter(path.join(dir, "made")).checkDir();
    expect(statSync(path.join(dir, "made")).isDirectory()).toBe(true);
    expect(statSync(path.join(dir, "made")).mode & 0o777).toBe(0o700);
    expect(readdirSync(path.join(dir, "made"))).toEqual([]);
    const err = errorOf(() => new AtomicWriter(path.join(dir, "no-parent", "out")).checkDir());
    expect(err.code).toBe("INVALID_ARGUMENT");
    expect(err.message).toMatch(/^--dir: .*no-parent\/out does not exist, nor does its parent .*no-parent: create the parent first$/);
    expect(readdirSync(dir)).toEqual(["made"]);
  });

  it("when DIR is not a directory, then checkDir says so naming --dir", () => {
    writeFileSync(path.join(dir, "f"), "");
    expect(errorOf(() => new AtomicWriter(path.join(dir, "f")).checkDir()).message).toMatch(/not a directory/);
    new AtomicWriter(dir).checkDir();
    expect(readdirSync(dir)).toEqual(["f"]);
  });
});
