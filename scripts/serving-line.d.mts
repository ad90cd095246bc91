/** Types of scripts/serving-line.mjs (plain ESM, shared by the bench and the tests). */
export const SERVING_WITH_WORKERS: "secretd serving with workers";
export const SERVING: "secretd serving";

export type ServingLine =
  | { kind: "primary"; port: number | undefined; workers: number | undefined }
  | { kind: "worker"; port: number | undefined; pid: number | undefined; worker: number | undefined };

export function parseServingLine(line: string): ServingLine | undefined;
