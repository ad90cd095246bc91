// The floor under the grpc-js echo in `npm run bench:gc`: a bare node:http2 server, no
// grpc-js, answering every stream as a gRPC unary call would (response headers, one
// framed message of RESPONSE_BYTES bytes, grpc-status trailers) once the request ends.
// Started with fork(); reports { ready, port } over IPC.
import http2 from "node:http2";

const size = Number(process.env.RESPONSE_BYTES ?? 1024);
const BODY = Buffer.alloc(5 + size, 0);
BODY.writeUInt32BE(size, 1);

const server = http2.createServer();
server.on("stream", (stream) => {
  stream.on("data", () => {});
  stream.on("end", () => {
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
    stream.end(BODY);
  });
  stream.on("error", () => {});
});
server.listen(0, "127.0.0.1", () => process.send?.({ ready: true, port: server.address().port, pid: process.pid }));

const stop = () => process.exit(0);
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("disconnect", stop);
