/**
 * Per-type data rules (SPEC §5). A rule sees the merged data and may return
 * server-written annotations (the TLS types report the certificate's notAfter).
 * Messages name the data key and the rule; they never carry value bytes, PEM text
 * or a parser's own message (JSON.parse quotes its input).
 */
import { X509Certificate, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { TextDecoder } from "node:util";
import { invalid } from "../errors.js";
import { firstPemBlock, firstPemLabel, type PemBlock } from "./pem.js";
import { MAX_KEY_PEM_BYTES, TLS_KEY_RULE, tlsKeyVerdict } from "./tls-key.js";

export const NOT_AFTER_ANNOTATION = "secretd.io/not-after";

type Data = ReadonlyMap<string, Buffer>;
type Rule = (data: Data, type: string) => Record<string, string>;

const accept: Rule = () => ({});
const utf8 = new TextDecoder("utf-8", { fatal: true });

function field(key: string): string {
  return `data[${JSON.stringify(key)}]`;
}

function required(data: Data, key: string, type: string): Buffer {
  const v = data.get(key);
  if (v === undefined) throw invalid(field(key), `is required for type ${type}`);
  return v;
}

function text(buf: Buffer, key: string): string {
  try {
    return utf8.decode(buf);
  } catch {
    throw invalid(field(key), "must be valid UTF-8");
  }
}

function jsonObject(key: string): Rule {
  return (data, type) => {
    const raw = text(required(data, key, type), key);
    let v: unknown;
    try {
      v = JSON.parse(raw);
    } catch {
      throw invalid(field(key), "must hold valid JSON");
    }
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw invalid(field(key), "must hold a JSON object");
    return {};
  };
}

function matching(re: RegExp, rule: string, key: string): Rule {
  return (data, type) => {
    if (!re.test(required(data, key, type).toString("latin1"))) throw invalid(field(key), rule);
    return {};
  };
}

function all(...rules: Rule[]): Rule {
  return (data, type) => Object.assign({}, ...rules.map((r) => r(data, type))) as Record<string, string>;
}

const basicAuth: Rule = (data, type) => {
  if (!data.has("username") && !data.has("password")) {
    throw invalid("data", `type ${type} needs the key "username" or "password"`);
  }
  return {};
};

const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A Nanocl Env secret: each key an environment name, each value what follows its `=`. */
const envEntries: Rule = (data) => {
  for (const [key, buf] of data) {
    if (!ENV_NAME_RE.test(key)) throw invalid(field(key), "the key must be an environment name matching [A-Za-z_][A-Za-z0-9_]*");
    if (text(buf, key).includes("\0")) throw invalid(field(key), "must not contain a NUL character");
  }
  return {};
};

/** A certificate this large is not a TLS certificate; nothing bigger reaches the parser. */
const MAX_CERT_DER_BYTES = 64 * 1024;
const KEY_LABELS = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"] as const;

/** The first certificate of a PEM bundle (leaf first, as TLS servers expect). */
function parseCertificate(buf: Buffer, key: string): X509Certificate {
  const block = firstPemBlock(buf.toString("latin1"), "CERTIFICATE");
  if (block === undefined) throw invalid(field(key), "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)");
  if (block.der.length > MAX_CERT_DER_BYTES) throw invalid(field(key), `holds a certificate larger than ${MAX_CERT_DER_BYTES} bytes`);
  try {
    return new X509Certificate(block.der);
  } catch {
    throw invalid(field(key), "holds a PEM certificate that does not parse");
  }
}

/**
 * The key type and size are checked on the DER before OpenSSL sees the key, since
 * importing some keys (DSA with a huge modulus) computes with them synchronously.
 */
function parsePrivateKey(buf: Buffer, key: string): KeyObject {
  const unparsable = () => invalid(field(key), "must hold an unencrypted PEM private key that parses");
  if (buf.length > MAX_KEY_PEM_BYTES) throw invalid(field(key), `${TLS_KEY_RULE}, at most ${MAX_KEY_PEM_BYTES} bytes of PEM`);
  const text = buf.toString("latin1");
  let block: PemBlock | undefined;
  for (const label of KEY_LABELS) {
    const b = firstPemBlock(text, label);
    if (b !== undefined && (block === undefined || text.indexOf(b.text) < text.indexOf(block.text))) block = b;
  }
  if (block === undefined) {
    const label = firstPemLabel(text);
    // Another kind of key (DSA, DH, ...) is named as unsupported; anything else is unparsable.
    if (label !== undefined && label.endsWith("PRIVATE KEY") && label !== "ENCRYPTED PRIVATE KEY") throw invalid(field(key), TLS_KEY_RULE);
    throw unparsable();
  }
  const verdict = tlsKeyVerdict(block.label, block.der);
  if (verdict === "unsupported") throw invalid(field(key), TLS_KEY_RULE);
  if (verdict === "malformed") throw unparsable();
  try {
    return createPrivateKey({ key: block.der, format: "der", type: block.label === "PRIVATE KEY" ? "pkcs8" : block.label === "RSA PRIVATE KEY" ? "pkcs1" : "sec1" });
  } catch {
    throw unparsable();
  }
}

function spki(k: KeyObject): Buffer {
  return k.export({ type: "spki", format: "der" });
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
// OpenSSL's ASN1_TIME_print form, which is what X509Certificate.validTo holds on Node 20.
const OPENSSL_TIME_RE = /^([A-Z][a-z]{2}) +(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/;

/** RFC 3339 in UTC, whole seconds: 2027-01-02T03:04:05Z. */
export function opensslTimeToRfc3339(t: string): string | undefined {
  const m = OPENSSL_TIME_RE.exec(t);
  if (m === null) return undefined;
  const month = MONTHS.indexOf(m[1]!);
  if (month < 0) return undefined;
  const ms = Date.UTC(Number(m[6]), month, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
  if (!Number.isFinite(ms)) return undefined;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function tls(certKey: string, keyKey: string): Rule {
  return (data, type) => {
    const certPem = required(data, certKey, type);
    const keyPem = required(data, keyKey, type);
    const cert = parseCertificate(certPem, certKey);
    const key = parsePrivateKey(keyPem, keyKey);
    if (!spki(createPublicKey(key)).equals(spki(cert.publicKey))) {
      throw invalid(field(keyKey), `does not match the certificate in ${field(certKey)}`);
    }
    const notAfter = opensslTimeToRfc3339(cert.validTo);
    if (notAfter === undefined) throw invalid(field(certKey), "holds a certificate whose notAfter cannot be read");
    return { [NOT_AFTER_ANNOTATION]: notAfter };
  };
}

const RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ["Opaque", accept],
  ["kubernetes.io/basic-auth", basicAuth],
  ["kubernetes.io/ssh-auth", (data, type) => (required(data, "ssh-privatekey", type), {})],
  ["kubernetes.io/tls", tls("tls.crt", "tls.key")],
  ["kubernetes.io/dockerconfigjson", jsonObject(".dockerconfigjson")],
  ["kubernetes.io/dockercfg", jsonObject(".dockercfg")],
  ["kubernetes.io/service-account-token", accept],
  [
    "bootstrap.kubernetes.io/token",
    all(
      matching(/^[a-z0-9]{6}$/, "must be exactly 6 characters of [a-z0-9]", "token-id"),
      matching(/^[a-z0-9]{16}$/, "must be exactly 16 characters of [a-z0-9]", "token-secret"),
    ),
  ],
  ["nanocl.io/env", envEntries],
  ["nanocl.io/tls", tls("Certificate", "CertificateKey")],
]);

export const KNOWN_SECRET_TYPES: readonly string[] = [...RULES.keys()];

export function isKnownSecretType(type: string): boolean {
  return RULES.has(type);
}

/**
 * Checks `data` against the rules of `type` (the effective type, already through
 * validateType); custom `domain/name` types accept anything. Returns the annotations
 * the server derives from the data.
 */
export function validateTypedData(type: string, data: ReadonlyMap<string, Buffer>): { annotations: Record<string, string> } {
  const rule = RULES.get(type) ?? accept;
  return { annotations: rule(data, type) };
}
