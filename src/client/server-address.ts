/**
 * `--server` as a user types it: `host`, `host:port`, `[v6]:port`, an IPv4 or IPv6
 * address. The port defaults to 50051 (the server's default), not to 443 as a bare
 * gRPC target would. Anything else (a URL, a port that is not a number, a path) is a
 * usage error naming the flag, before any connection is tried.
 */
import { isIP } from "node:net";
import { invalid } from "../errors.js";

export const DEFAULT_PORT = 50051;

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
  /** What grpc-js dials: "host:port", IPv6 in brackets. */
  readonly target: string;
}

/** RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens. */
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

function fail(flag: string, value: string, why: string): never {
  throw invalid(flag, `"${value.slice(0, 80)}" ${why}; expected host[:port], e.g. 127.0.0.1:50051, secretd.example.com or [::1]:50051`);
}

function parsePort(flag: string, value: string, port: string): number {
  if (!/^\d{1,5}$/.test(port)) fail(flag, value, `has a port that is not a number`);
  const n = Number(port);
  if (n < 1 || n > 65535) fail(flag, value, "has a port outside 1-65535");
  return n;
}

export function parseServerAddress(value: string, flag = "--server"): ServerAddress {
  const v = value.trim();
  if (v === "") throw invalid(flag, "must not be empty");
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(v)) {
    fail(flag, value, "is a URL: give no scheme (TLS is chosen by --ca, not by https://)");
  }
  let host: string;
  let port = DEFAULT_PORT;
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(v);
  if (bracketed) {
    host = bracketed[1] ?? "";
    if (isIP(host) !== 6) fail(flag, value, "holds no IPv6 address between the brackets");
    if (bracketed[2] !== undefined) port = parsePort(flag, value, bracketed[2]);
  } else if (isIP(v) === 6) {
    host = v;
  } else {
    const colon = v.lastIndexOf(":");
    host = colon < 0 ? v : v.slice(0, colon);
    if (colon >= 0) port = parsePort(flag, value, v.slice(colon + 1));
    if (isIP(host) !== 4 && !HOSTNAME.test(host)) fail(flag, value, "is not a host name or IP address");
  }
  return { host, port, target: isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}` };
}
