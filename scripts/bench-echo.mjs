// The baseline of `npm run bench`: a bare grpc-js unary server in its own process,
// with the same transport limits as secretd (SERVER_OPTIONS) and no work per call
// beyond grpc-js itself: it answers every call with a fixed message of RESPONSE_BYTES
// bytes (the size of secretd's GetSecret response for a 1 KiB value).
// Started by scripts/bench.mjs with fork(); reports { ready, port } over IPC.
import { Server, ServerCredentials } from "@grpc/grpc-js";
import { SERVER_OPTIONS } from "../dist/transport/grpc/server.js";

const responseBytes = Number(process.env.RESPONSE_BYTES ?? 1024);
const RESPONSE = Buffer.alloc(responseBytes, 0x61);
// A valid protobuf message of exactly responseBytes bytes: field 1 (bytes) holding the rest.
for (let varintLen = 1; varintLen <= 3; varintLen++) {
  const len = responseBytes - 1 - varintLen;
  if (len >= 0 && len < 128 ** varintLen && (varintLen === 1 || len >= 128 ** (varintLen - 1))) {
    RESPONSE[0] = 0x0a;
    for (let i = 0, v = len; i < varintLen; i++, v = Math.floor(v / 128)) RESPONSE[1 + i] = (v % 128) | (i < varintLen - 1 ? 0x80 : 0);
    break;
  }
}

const identity = (b) => b;
const service = {
  echo: {
    path: "/bench.v1.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const server = new Server(SERVER_OPTIONS);
server.addService(service, {
  echo(_call, callback) {
    callback(null, RESPONSE);
  },
});
server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, port) => {
  if (err) {
    console.error(err);
    process.exit(1);
  }
  process.send?.({ ready: true, port, pid: process.pid });
});

const stop = () => {
  server.forceShutdown();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The orchestrator died or closed the channel: never outlive it.
process.on("disconnect", stop);
