/**
 * grpc-js reports a failed connection as UNAVAILABLE with a transport-level trace
 * ("No connection established. Last error: … ssl3_get_record:wrong version number …").
 * This turns it into one sentence an operator can act on: the server is down, the name
 * does not resolve, the two sides disagree about TLS (and which side speaks what), or
 * the certificates do not match. Anything unrecognised keeps the original details.
 */
import { connect as tlsConnect } from "node:tls";
import { isIP } from "node:net";
import type { ServerAddress } from "./server-address.js";

export interface Dialled {
  readonly address: ServerAddress;
  /** Whether this client spoke TLS (--ca, --cert or --tls given). */
  readonly tls: boolean;
  /** Whether this client offered a certificate (--cert). */
  readonly clientCert: boolean;
  /** Whether the server's certificate was checked against --ca (else the system's CAs). */
  readonly customCa: boolean;
}

const PROBE_MS = 2000;

/** Whether something at `address` completes a TLS handshake (any certificate). */
export function speaksTls(address: ServerAddress): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host: address.host,
      port: address.port,
      ...(isIP(address.host) === 0 ? { servername: address.host } : {}),
      rejectUnauthorized: false,
      ALPNProtocols: ["h2"],
    });
    const done = (v: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(false), PROBE_MS);
    socket.once("secureConnect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The last error of a connection trace, without grpc-js's framing or OpenSSL's source paths. */
function lastError(details: string): string {
  const m = /Last error: (?:Error: )?([\s\S]*?)(?:\s*\(\d{4}-\d\d-\d\dT[^)]*\))?\.?\s*(?:Resolution note:[\s\S]*)?$/.exec(details);
  const raw = (m?.[1] ?? details).trim();
  const ssl = /SSL routines:[^:]*:([^:]+)/.exec(raw);
  return (ssl?.[1] ?? raw).replace(/\s+/g, " ").trim();
}

/**
 * A sentence for a call that failed with UNAVAILABLE before the server answered, or
 * undefined when `details` is not a connection failure (the server itself said
 * UNAVAILABLE, e.g. while shutting down).
 */
export async function describeConnectionFailure(details: string, d: Dialled): Promise<string | undefined> {
  const at = d.address.target;
  if (/ECONNREFUSED/.test(details)) return `cannot reach ${at}: connection refused (is secretd running there?)`;
  if (/Name resolution failed|ENOTFOUND|EAI_AGAIN|Failed to parse DNS address/.test(details)) {
    return `cannot reach ${at}: the host name "${d.address.host}" does not resolve`;
  }
  if (/EHOSTUNREACH|ENETUNREACH/.test(details)) return `cannot reach ${at}: no route to the host`;
  if (/ETIMEDOUT/.test(details)) return `cannot reach ${at}: the connection timed out`;
  if (/ECONNRESET/.test(details) && !d.tls) {
    if (await speaksTls(d.address)) return plaintextToTls(at);
    return `cannot reach ${at}: the connection was reset`;
  }
  if (!/No connection established|Failed to connect|Connection dropped/.test(details)) return undefined;
  const why = lastError(details);
  if (d.tls) {
    if (/wrong version number|packet length too long|unknown protocol|http request/i.test(why)) {
      return `cannot reach ${at} over TLS: the server speaks plaintext and this client TLS (drop --ca/--cert/--cert-key/--tls, or start the server with --tls-cert and --tls-key)`;
    }
    if (/certificate required/i.test(why)) {
      return `TLS with ${at} failed: the server requires a client certificate (pass --cert and --cert-key)`;
    }
    if (/unknown ca|bad certificate|certificate unknown|decrypt error/i.test(why)) {
      return `TLS with ${at} failed: the server refused this client's certificate (--cert): ${why}`;
    }
    if (/certificate|self[- ]signed|issuer|altname|does not match/i.test(why)) {
      if (!d.customCa) {
        return `TLS with ${at} failed: the server's certificate is not trusted by the system's CAs (no --ca was given; pass --ca with the CA bundle that signed it) (${why})`;
      }
      return `TLS with ${at} failed: the server's certificate is not trusted by --ca (${why})`;
    }
    return `cannot reach ${at} over TLS: ${why}`;
  }
  if (await speaksTls(d.address)) return plaintextToTls(at);
  return `cannot reach ${at}: ${why}`;
}

function plaintextToTls(at: string): string {
  return `cannot reach ${at}: the server speaks TLS and this client plaintext (pass --ca with the CA bundle that signed the server's certificate)`;
}
