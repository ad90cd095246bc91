// The floor for scripts/bench-watch.mjs --bare: a bare grpc-js server whose
// WatchProjection writes one fixed projection (one 1 KiB value) and keeps the stream open,
// with the same server options as secretd, and nothing else (no auth, no storage, no
// hub). With WATCH_ECHO_ROUTE=h2 (--bare=h2) the stream goes through secretd's node:http2
// route (dist/transport/grpc/adapter/stream-router.js) instead, as secretd's own does.
// IPC as bench-server.mjs: → { ready, port, pid }; ← { cmd: "mem" } → { mem }; ← { cmd: "stop" }.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { SecretServiceService } from "../dist/gen/secrets/v1/secrets.js";
import { SERVER_OPTIONS, STREAM_LIMITS } from "../dist/transport/grpc/server.js";
import { serverStreamRoute } from "../dist/transport/grpc/adapter/h2-server-stream.js";
import { routeStreams } from "../dist/transport/grpc/adapter/stream-router.js";

const projection = { values: [{ secret: "idle", key: "v", env: "V", path: "idle/v", mode: 0o400, value: Buffer.alloc(1024, 118) }], sources: [{ mesh: "default", name: "idle", version: 1 }], revision: "0".repeat(64) };
const open = new Set();
const server = new Server(SERVER_OPTIONS);
const unimplemented = (_call, cb) => cb({ code: 12, details: "bare" });
const handlers = Object.fromEntries(Object.keys(SecretServiceService).map((k) => [k, unimplemented]));
handlers.watchProjection = (call) => {
  open.add(call);
  call.on("cancelled", () => open.delete(call));
  call.write(projection);
};
server.addService(SecretServiceService, handlers);
const port = await new Promise((resolve, reject) => server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
if (process.env.WATCH_ECHO_ROUTE === "h2") {
  const method = SecretServiceService.watchProjection;
  routeStreams(server, new Map([[method.path, serverStreamRoute(method, STREAM_LIMITS, handlers.watchProjection)]]));
}
process.on("message", (m) => {
  if (m?.cmd === "mem") {
    const u = process.memoryUsage();
    process.send({ mem: Object.fromEntries(Object.entries(u).map(([k, v]) => [k, Math.round((v / 2 ** 20) * 10) / 10])) });
  } else if (m?.cmd === "stop") {
    server.forceShutdown();
    process.exit(0);
  }
});
process.on("disconnect", () => process.exit(0));
process.send({ ready: true, port, pid: process.pid });
