import { spawnSync } from "node:child_process";

/** Certificate tests use the openssl binary; CI installs it, elsewhere they are skipped. */
export const hasOpenssl = spawnSync("openssl", ["version"]).status === 0;
