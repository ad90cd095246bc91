/**
 * #27 (last round's oversized list pages, and the bench's list_pages): a ListSecrets of
 * page_size 1000 over secrets of 256 KiB annotations read every remaining row (JSON
 * parsed, MAC checked) in one synchronous query per page, then kept a quarter of them:
 * ~5 s of CPU per call, every other tenant waiting behind it. Rows are now read in
 * slices of LIST_SLICE_BYTES that yield the event loop, and at most one slice past a
 * page's end; the pages and their tokens are as before, and the victim is served. A
 * tenant's listings read LISTINGS_PER_TENANT at a time, so its many listings in flight
 * do not take turn after turn from other tenants.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { LIST_SLICE_BYTES, LISTINGS_PER_TENANT } from "../../src/domain/secrets.js";
import type { ListSecretsResponse } from "../../src/gen/secrets/v1/secrets.js";
import type { ListedSecret } from "../../src/storage/storage.js";
import { startTestServer, type TestServer } from "../helpers/server.js";
import { attackerAdmin, startVictim, type Victim } from "./harness.js";

const M = "fat";
const SECRETS = 24;
const FAT = 256 * 1024 - 32;

let s: TestServer;
let victim: Victim;
let admin: string;

beforeAll(async () => {
  s = await startTestServer();
  victim = await startVictim(s);
  admin = await attackerAdmin(s);
  const annotations = { "example.com/blob": "a".repeat(FAT) };
  for (let i = 0; i < SECRETS; i++) await s.call("createSecret", { mesh: M, name: `fat-${String(i).padStart(3, "0")}`, stringData: { k: "v" }, annotations }, admin);
});

afterAll(async () => {
  vi.restoreAllMocks();
  await s?.stop();
});

async function listAll(): Promise<{ names: string[]; pages: number }> {
  const names: string[] = [];
  let pageToken = "";
  let pages = 0;
  do {
    const page = await s.call<ListSecretsResponse>("listSecrets", { mesh: M, pageSize: 1000, pageToken }, admin);
    names.push(...page.secrets.map((x) => x.name));
    pages++;
    pageToken = page.nextPageToken;
  } while (pageToken !== "" && pages < 100);
  return { names, pages };
}

describe("list pages of fat secrets", () => {
  it("reads rows in slices, at most one slice past each page, with the pages unchanged", async () => {
    const slices: ListedSecret[][] = [];
    const storage = s.app.storage;
    const inner = storage.listSecrets.bind(storage);
    const spy = vi.spyOn(storage, "listSecrets").mockImplementation(async (scope, q) => {
      const rows = await inner(scope, q);
      if (scope.mesh === M) slices.push(rows);
      return rows;
    });
    try {
      const { names, pages } = await listAll();
      expect(names).toEqual(Array.from({ length: SECRETS }, (_, i) => `fat-${String(i).padStart(3, "0")}`));
      expect(pages).toBeGreaterThan(1); // 1 MiB pages: 3 of these rows apiece
      // A page's first slice asks for 1 row, the next ones for what LIST_SLICE_BYTES holds (one of these).
      for (const rows of slices) expect(rows.length).toBeLessThanOrEqual(Math.max(4, Math.ceil(LIST_SLICE_BYTES / FAT)));
      // Rows read in all: every row once, plus at most one slice's worth per page.
      const read = slices.reduce((n, r) => n + r.length, 0);
      expect(read).toBeLessThanOrEqual(SECRETS + pages * 4);
    } finally {
      spy.mockRestore();
    }
  });

  it("when one tenant has eight listings in flight, then at most LISTINGS_PER_TENANT of them read at a time, and every page is still served", async () => {
    // Slicing alone let eight listings take eight slices' turns for each of another tenant's
    // turns (bench:isolation list_pages, +207 ms p99): the rest wait their turn.
    const storage = s.app.storage;
    const inner = storage.listSecrets.bind(storage);
    let reading = 0;
    let most = 0;
    const spy = vi.spyOn(storage, "listSecrets").mockImplementation(async (scope, q) => {
      if (scope.mesh !== M) return inner(scope, q);
      most = Math.max(most, ++reading);
      try {
        await new Promise((r) => setTimeout(r, 5)); // a slow slice: listings in flight overlap
        return await inner(scope, q);
      } finally {
        reading--;
      }
    });
    try {
      const all = await Promise.all(Array.from({ length: 8 }, () => listAll()));
      for (const { names } of all) expect(names).toHaveLength(SECRETS);
      expect(most).toBe(LISTINGS_PER_TENANT);
    } finally {
      spy.mockRestore();
    }
  });

  it("serves the victim while eight listings of the fat secrets run", async () => {
    let stop = false;
    const attackers = Array.from({ length: 8 }, async () => {
      while (!stop) await listAll();
    });
    try {
      for (let i = 0; i < 3; i++) await victim.calls(`list-${i}`);
    } finally {
      stop = true;
      await Promise.all(attackers);
    }
  });
});
