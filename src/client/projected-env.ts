/**
 * Values as environment variables, for the consumers that produce env (`secretd run`,
 * `project -o env`, `get -o env`) and only for them: the server answers every value's
 * env name (the KeyMapping's `env`, or the derived env_prefix + KEY) without judging it,
 * and file-only consumers ignore it. Here every name is checked before it is used:
 * - it must be a portable name (env-names.ts: no '=', '%', newline or NUL, whoever sent it);
 * - a DERIVED name must not be in a denied family (identity, loader, interpreter, proxy,
 *   TLS trust); a name the request maps explicitly in `env` is the operator's choice;
 * - no two values may share a name.
 * A failure is INVALID_ARGUMENT naming the secret, the key and the name, and what to
 * change in the projection file; never a value.
 */
import { invalid } from "../errors.js";
import { deniedEnvFamily, ENV_NAME_RULE, isEnvName } from "../domain/env-names.js";
import type { Projection, ProjectSecretsRequest } from "../gen/secrets/v1/secrets.js";
import { envValue } from "./value-text.js";

export interface EnvCandidate {
  readonly secret: string;
  readonly key: string;
  readonly env: string;
  /** Named in a KeyMapping's `env` (else derived from env_prefix + key). */
  readonly explicit: boolean;
  readonly value: Uint8Array;
}

/** A name as an error may show it: at most 64 characters, control characters escaped. */
function shown(name: string): string {
  return JSON.stringify(name.slice(0, 64));
}

export interface EnvHints {
  /** Appended to a binary value's error ("use --output json"). */
  readonly value?: string;
  /** What to do about a name that cannot be used. */
  readonly name?: string;
}

const IN_THE_FILE = "name it with env in the projection file";

/** The checked NAME → value pairs, in the order given; throws on the first name or value that cannot be used. */
export function checkedEnv(values: readonly EnvCandidate[], hints: EnvHints = {}): Array<[string, string]> {
  const fix = hints.name ?? IN_THE_FILE;
  const seen = new Map<string, string>();
  const out: Array<[string, string]> = [];
  for (const v of values) {
    const what = `secret "${v.secret}" key "${v.key}"`;
    const kind = v.explicit ? "env" : "the derived env name";
    if (!isEnvName(v.env)) throw invalid(what, `${kind} ${shown(v.env)} ${ENV_NAME_RULE}${v.explicit ? "" : `: ${fix}`}`);
    if (!v.explicit) {
      const family = deniedEnvFamily(v.env);
      if (family !== undefined) {
        throw invalid(what, `the derived env name "${v.env}" (env_prefix + key) is ${family} and is never set from a key name: ${fix}${hints.name === undefined ? ", or list the keys to project" : ""}`);
      }
    }
    const other = seen.get(v.env);
    if (other !== undefined) throw invalid(what, `env "${v.env}" is also produced by ${other}: ${hints.name ?? "give one of them another env in the projection file"}`);
    seen.set(v.env, what);
    out.push([v.env, envValue(v.value, what, hints.value)]);
  }
  return out;
}

/**
 * The values of a projection as env candidates; a name counts as explicit only when the
 * request maps that secret's key to it. A key the request maps to a path and no env is a
 * file, not a variable: it yields no env at all (a key `user` mapped to a path never sets
 * USER, #26.7).
 */
export function envCandidates(req: ProjectSecretsRequest, p: Projection): EnvCandidate[] {
  const explicit = new Set<string>();
  const fileOnly = new Set<string>();
  for (const item of req.items) {
    for (const k of item.keys) {
      if (k.env !== "") explicit.add(JSON.stringify([item.name, k.key, k.env]));
      else if (k.path !== "") fileOnly.add(JSON.stringify([item.name, k.key]));
    }
  }
  return p.values
    .map((v) => ({ secret: v.secret, key: v.key, env: v.env, value: v.value, explicit: explicit.has(JSON.stringify([v.secret, v.key, v.env])) }))
    .filter((v) => v.explicit || !fileOnly.has(JSON.stringify([v.secret, v.key])));
}

/** What `secretd run` adds to CMD's environment. */
export function projectedEnv(req: ProjectSecretsRequest, p: Projection): Record<string, string> {
  return Object.fromEntries(checkedEnv(envCandidates(req, p), { value: " (project it as a file with `secretd sidecar`)" }));
}
