/** `--metrics-listen host:port`: GET /metrics in the Prometheus text format; nothing else. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { listenRefused } from "../transport/listen-refused.js";

/** What /metrics answers from: a prom-client Registry, or the primary's cluster-wide aggregate. */
export interface MetricsSource {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startMetricsServer(registry: MetricsSource, host: string, port: number, onError: (err: unknown) => void): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const url = (req.url ?? "").split("?")[0];
    if (url !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: metrics are at GET /metrics\n");
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { "content-type": registry.contentType }).end(req.method === "HEAD" ? undefined : text),
      (err: unknown) => {
        onError(err);
        res.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  });
  server.keepAliveTimeout = 5_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    const refused = (err: unknown): void => reject(listenRefused("--metrics-listen", host, port, err));
    server.once("error", refused);
    server.listen(port, host, () => {
      server.off("error", refused);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
