/**
 * Which private keys a TLS secret may hold, decided from the DER structure alone,
 * before OpenSSL computes anything with the key: a PKCS#8 DSA key with a huge,
 * non-prime modulus made createPrivateKey compute on the event loop for seconds.
 * Accepted: RSA with a 2048-8192 bit modulus, EC on P-256/P-384/P-521 (named curves
 * only), Ed25519 and Ed448, unencrypted, as PKCS#8 ("PRIVATE KEY"), PKCS#1
 * ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY").
 */

export const MIN_RSA_BITS = 2048;
export const MAX_RSA_BITS = 8192;
/** An RSA-8192 PKCS#1 key is ~6.4 KB of PEM; anything larger is not a TLS key. */
export const MAX_KEY_PEM_BYTES = 16 * 1024;

export const TLS_KEY_RULE = `must be an RSA (${MIN_RSA_BITS}-${MAX_RSA_BITS} bit), EC P-256/P-384/P-521, Ed25519 or Ed448 private key`;

const SEQUENCE = 0x30;
const INTEGER = 0x02;
const OCTET_STRING = 0x04;
const OID = 0x06;
const CONTEXT_0 = 0xa0;

const RSA_ENCRYPTION = "2a864886f70d010101";
const EC_PUBLIC_KEY = "2a8648ce3d0201";
const NAMED_CURVES = new Set(["2a8648ce3d030107" /* P-256 */, "2b81040022" /* P-384 */, "2b81040023" /* P-521 */]);
const EDWARDS = new Set(["2b6570" /* Ed25519 */, "2b6571" /* Ed448 */]);

export type KeyVerdict = "ok" | "unsupported" | "malformed";

interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

class Der {
  constructor(
    private readonly buf: Buffer,
    private pos: number,
    private readonly limit: number,
  ) {}

  get done(): boolean {
    return this.pos >= this.limit;
  }

  next(): Tlv | undefined {
    if (this.pos + 2 > this.limit) return undefined;
    const tag = this.buf[this.pos]!;
    let len = this.buf[this.pos + 1]!;
    let at = this.pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0 || n > 3 || at + n > this.limit) return undefined;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + this.buf[at + i]!;
      at += n;
    }
    if (at + len > this.limit) return undefined;
    this.pos = at + len;
    return { tag, start: at, end: at + len };
  }

  inside(t: Tlv): Der {
    return new Der(this.buf, t.start, t.end);
  }

  hex(t: Tlv): string {
    return this.buf.subarray(t.start, t.end).toString("hex");
  }

  /** Bit length of a non-negative INTEGER's value. */
  bits(t: Tlv): number {
    let i = t.start;
    while (i < t.end && this.buf[i] === 0) i++;
    if (i === t.end) return 0;
    return (t.end - i - 1) * 8 + (32 - Math.clz32(this.buf[i]!));
  }
}

function expect(d: Der, tag: number): Tlv | undefined {
  const t = d.next();
  return t?.tag === tag ? t : undefined;
}

/** RSAPrivateKey (PKCS#1): version, modulus, publicExponent, ... */
function rsaVerdict(d: Der): KeyVerdict {
  const seq = expect(d, SEQUENCE);
  if (!seq) return "malformed";
  const inner = d.inside(seq);
  if (!expect(inner, INTEGER)) return "malformed";
  const n = expect(inner, INTEGER);
  const e = expect(inner, INTEGER);
  if (!n || !e) return "malformed";
  const bits = inner.bits(n);
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS || inner.bits(e) > 64) return "unsupported";
  return "ok";
}

/** ECPrivateKey (SEC1): version 1, privateKey, [0] named curve (required here). */
function sec1Verdict(d: Der, curveFromPkcs8: string | undefined): KeyVerdict {
  const seq = expect(d, SEQUENCE);
  if (!seq) return "malformed";
  const inner = d.inside(seq);
  if (!expect(inner, INTEGER) || !expect(inner, OCTET_STRING)) return "malformed";
  let curve = curveFromPkcs8;
  const params = inner.done ? undefined : inner.next();
  if (params?.tag === CONTEXT_0) {
    const oid = expect(inner.inside(params), OID);
    if (!oid) return "unsupported"; // explicit curve parameters
    const named = inner.hex(oid);
    if (curve !== undefined && curve !== named) return "malformed";
    curve = named;
  }
  return curve !== undefined && NAMED_CURVES.has(curve) ? "ok" : "unsupported";
}

function pkcs8Verdict(d: Der): KeyVerdict {
  const seq = expect(d, SEQUENCE);
  if (!seq || !d.done) return "malformed";
  const info = d.inside(seq);
  if (!expect(info, INTEGER)) return "malformed";
  const algId = expect(info, SEQUENCE);
  const key = expect(info, OCTET_STRING);
  if (!algId || !key) return "malformed";
  const alg = info.inside(algId);
  const oid = expect(alg, OID);
  if (!oid) return "malformed";
  const algorithm = alg.hex(oid);
  const keyDer = info.inside(key);
  if (algorithm === RSA_ENCRYPTION) return rsaVerdict(keyDer);
  if (algorithm === EC_PUBLIC_KEY) {
    const curve = expect(alg, OID);
    return curve ? sec1Verdict(keyDer, alg.hex(curve)) : "unsupported";
  }
  return EDWARDS.has(algorithm) ? "ok" : "unsupported";
}

/** Judges a PEM private key's DER by its label, without any key computation. */
export function tlsKeyVerdict(label: string, der: Buffer): KeyVerdict {
  const d = new Der(der, 0, der.length);
  switch (label) {
    case "PRIVATE KEY":
      return pkcs8Verdict(d);
    case "RSA PRIVATE KEY":
      return rsaVerdict(d);
    case "EC PRIVATE KEY":
      return sec1Verdict(d, undefined);
    default:
      return "unsupported";
  }
}
