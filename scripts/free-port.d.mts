/** Types of scripts/free-port.mjs (plain ESM, shared by the scripts and the tests). */
export function freePort(): Promise<number>;
