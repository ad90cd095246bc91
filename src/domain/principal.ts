/**
 * The verified caller. Produced once, by authentication, from a verified token; every
 * layer below takes it as an argument and never re-reads a token.
 */
export interface Principal {
  readonly sub: string;
  readonly tenant: string;
  readonly roles: readonly string[];
  /** undefined = every mesh (claim absent or "*"). */
  readonly meshes: readonly string[] | undefined;
  /** Seconds since epoch; the token is not valid at or past it. */
  readonly exp: number | undefined;
  /**
   * A system principal's whole authority (the rotation scheduler's): this level on this
   * one secret, nothing on any other. Never set from a token.
   */
  readonly only?: { readonly secretUid: string; readonly level: number };
}

export function hasRole(p: Principal, role: string): boolean {
  return p.roles.includes(role);
}

/** The global scope ("") belongs to the whole tenant and is never excluded by `meshes`. */
export function mayUseMesh(p: Principal, mesh: string): boolean {
  return mesh === "" || p.meshes === undefined || p.meshes.includes(mesh);
}
