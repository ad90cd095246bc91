/**
 * ListConsumers: the live watches of one secret, from the leases every replica keeps in
 * storage (src/watch/consumer-leases.ts). Who watches a secret is the business of those
 * who may delete it: the owner, an ADMIN holder, a tenant-admin.
 */
import type { ListConsumersRequest } from "../gen/secrets/v1/secrets.js";
import type { LeaseRow, Storage } from "../storage/storage.js";
import { Level } from "./access.js";
import { invalid } from "../errors.js";
import { consumerEntryBytes, PAGE_BYTES } from "./page-budget.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import type { Principal } from "./principal.js";
import { scopeFor, type Secrets } from "./secrets.js";
import { validateName } from "./validation.js";

const DEFAULT_PAGE_SIZE = 100;
const MAX_PAGE_SIZE = 1000;

/** A lease's place in "oldest first" order, as a string that sorts the same way. */
function positionOf(l: LeaseRow): string {
  return `${String(l.since).padStart(16, "0")}/${l.watchId}`;
}

function byAge(a: LeaseRow, b: LeaseRow): number {
  const x = positionOf(a);
  const y = positionOf(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

export interface ConsumersDeps {
  readonly storage: Storage;
  readonly secrets: Secrets;
  readonly now?: () => number;
}

export class Consumers {
  private readonly now: () => number;

  constructor(private readonly deps: ConsumersDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * One page of consumers, oldest first: at most page_size (default 100, max 1000) and
   * PAGE_BYTES encoded, since a secret may have as many consumers as watches are allowed,
   * each carrying its token's sub and roles (#16 item 4).
   */
  async list(p: Principal, req: ListConsumersRequest): Promise<{ consumers: LeaseRow[]; nextPageToken: string }> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    if (req.pageSize < 0) throw invalid("page_size", "must not be negative");
    const pageSize = Math.min(req.pageSize === 0 ? DEFAULT_PAGE_SIZE : req.pageSize, MAX_PAGE_SIZE);
    const query = ["consumers", scope.mesh, req.name];
    const after = decodePageToken(req.pageToken, query, "ListConsumers").after;
    const found = await this.deps.storage.readSecret(scope, req.name, 0);
    const { secret } = this.deps.secrets.authorize(p, found, req.name, Level.ADMIN);
    const all = (await this.deps.storage.listLeases(secret.uid, this.now())).sort(byAge);
    const start = after === "" ? 0 : all.findIndex((l) => positionOf(l) > after);
    const out: LeaseRow[] = [];
    let bytes = 0;
    for (const l of start < 0 ? [] : all.slice(start)) {
      const size = consumerEntryBytes(l);
      if (out.length === pageSize || (out.length > 0 && bytes + size > PAGE_BYTES)) {
        return { consumers: out, nextPageToken: encodePageToken(positionOf(out[out.length - 1]!), query) };
      }
      bytes += size;
      out.push(l);
    }
    return { consumers: out, nextPageToken: "" };
  }
}
