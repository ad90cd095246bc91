/**
 * ListConsumers: the live watches of one secret, from the leases every replica keeps in
 * storage (src/watch/consumer-leases.ts). Who watches a secret is the business of those
 * who may delete it: the owner, an ADMIN holder, a tenant-admin.
 */
import type { ListConsumersRequest } from "../gen/secrets/v1/secrets.js";
import type { LeaseRow, Storage } from "../storage/storage.js";
import { Level } from "./access.js";
import type { Principal } from "./principal.js";
import { scopeFor, type Secrets } from "./secrets.js";
import { validateName } from "./validation.js";

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

  async list(p: Principal, req: ListConsumersRequest): Promise<LeaseRow[]> {
    validateName(req.name);
    const scope = scopeFor(p, req.mesh);
    const found = await this.deps.storage.readSecret(scope, req.name, 0);
    const { secret } = this.deps.secrets.authorize(p, found, req.name, Level.ADMIN);
    return this.deps.storage.listLeases(secret.uid, this.now());
  }
}
