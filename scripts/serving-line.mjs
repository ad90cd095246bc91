// The start lines of `secretd serve --workers N` (src/cluster.ts, src/cli/serve.ts), as
// read by the bench, the e2e helpers and the workers test: one parser for all of them.
//   {"msg":"secretd serving","worker":1,"pid":123,"listen":"127.0.0.1:PORT",...}   one per worker
//   {"msg":"secretd serving with workers","listen":"127.0.0.1:PORT","workers":2}   the primary, once all serve

/** The primary's "all workers serve" message. */
export const SERVING_WITH_WORKERS = "secretd serving with workers";
/** Each server process's (each worker's) "serving" message. */
export const SERVING = "secretd serving";

function portOf(listen) {
  const port = Number(String(listen ?? "").split(":").pop());
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

/**
 * One log line → what it says about start-up, or undefined for any other line.
 * @param {string} line
 */
export function parseServingLine(line) {
  if (!line.includes(SERVING)) return undefined;
  let l;
  try {
    l = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (l.msg === SERVING_WITH_WORKERS) return { kind: "primary", port: portOf(l.listen), workers: l.workers };
  if (l.msg === SERVING) return { kind: "worker", port: portOf(l.listen), pid: l.pid, worker: l.worker };
  return undefined;
}
