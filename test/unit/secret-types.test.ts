import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NOT_AFTER_ANNOTATION, opensslTimeToRfc3339, validateTypedData } from "../../src/domain/secret-types.js";
import { invalidMessage } from "../helpers/errors.js";
import { hasOpenssl } from "../helpers/openssl.js";

function data(entries: Record<string, string | Buffer>): Map<string, Buffer> {
  return new Map(Object.entries(entries).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)]));
}


const SECRET = "Hunter2SECRETvalue";
const BAD_UTF8 = Buffer.from([0x66, 0xff, 0xfe]);

describe("untyped and permissive types", () => {
  it.each(["Opaque", "kubernetes.io/service-account-token", "example.com/anything", "kubernetes.io/custom"])(
    "when the type is %s, then any data (or none) is accepted with no annotations",
    (type) => {
      expect(validateTypedData(type, new Map())).toEqual({ annotations: {} });
      expect(validateTypedData(type, data({ k: SECRET, bin: BAD_UTF8 }))).toEqual({ annotations: {} });
    },
  );
});

describe("kubernetes.io/basic-auth", () => {
  const T = "kubernetes.io/basic-auth";
  it("when username or password (or both) is present, then it is accepted", () => {
    expect(validateTypedData(T, data({ username: "u" })).annotations).toEqual({});
    expect(validateTypedData(T, data({ password: SECRET })).annotations).toEqual({});
    expect(validateTypedData(T, data({ username: "u", password: "p", extra: "x" })).annotations).toEqual({});
  });
  it("when neither is present, then INVALID_ARGUMENT names both keys", () => {
    expect(invalidMessage(() => validateTypedData(T, data({ user: SECRET })))).toBe(
      'data: type kubernetes.io/basic-auth needs the key "username" or "password"',
    );
    expect(invalidMessage(() => validateTypedData(T, new Map()))).toMatch(/^data: /);
  });
});

describe("kubernetes.io/ssh-auth", () => {
  const T = "kubernetes.io/ssh-auth";
  it("when ssh-privatekey is present, then it is accepted", () => {
    expect(validateTypedData(T, data({ "ssh-privatekey": SECRET })).annotations).toEqual({});
  });
  it("when ssh-privatekey is missing, then INVALID_ARGUMENT names the key", () => {
    expect(invalidMessage(() => validateTypedData(T, data({ "ssh-publickey": "x" })))).toBe(
      'data["ssh-privatekey"]: is required for type kubernetes.io/ssh-auth',
    );
  });
});

describe.each([
  ["kubernetes.io/dockerconfigjson", ".dockerconfigjson"],
  ["kubernetes.io/dockercfg", ".dockercfg"],
])("%s", (T, key) => {
  it("when the key holds a JSON object, then it is accepted", () => {
    expect(validateTypedData(T, data({ [key]: '{"auths":{"r.example.com":{"auth":"dTpw"}}}' })).annotations).toEqual({});
    expect(validateTypedData(T, data({ [key]: " {} " })).annotations).toEqual({});
  });
  it("when the key is missing, then INVALID_ARGUMENT names it", () => {
    expect(invalidMessage(() => validateTypedData(T, data({ other: "{}" })))).toBe(`data["${key}"]: is required for type ${T}`);
  });
  it.each([
    [`{"auths": ${SECRET}}`, "must hold valid JSON"],
    [SECRET, "must hold valid JSON"],
    ["", "must hold valid JSON"],
    ["[]", "must hold a JSON object"],
    ["null", "must hold a JSON object"],
    [`"${SECRET}"`, "must hold a JSON object"],
    ["42", "must hold a JSON object"],
  ])("when the key holds %j, then INVALID_ARGUMENT says %j without quoting the value", (value, rule) => {
    const msg = invalidMessage(() => validateTypedData(T, data({ [key]: value })));
    expect(msg).toBe(`data["${key}"]: ${rule}`);
    expect(msg).not.toContain(SECRET);
  });
  it("when the key is not UTF-8, then INVALID_ARGUMENT says so", () => {
    expect(invalidMessage(() => validateTypedData(T, data({ [key]: BAD_UTF8 })))).toBe(`data["${key}"]: must be valid UTF-8`);
  });
});

describe("bootstrap.kubernetes.io/token", () => {
  const T = "bootstrap.kubernetes.io/token";
  const ok = { "token-id": "abc123", "token-secret": "0123456789abcdef" };
  it("when token-id is 6 and token-secret 16 characters of [a-z0-9], then it is accepted", () => {
    expect(validateTypedData(T, data({ ...ok, "usage-bootstrap-signing": "true" })).annotations).toEqual({});
  });
  it.each([
    ["token-id", "ABC123"],
    ["token-id", "abc12"],
    ["token-id", "abc1234"],
    ["token-id", "abc-12"],
    ["token-secret", "0123456789ABCDEF"],
    ["token-secret", "0123456789abcde"],
    ["token-secret", "0123456789abcdef0"],
    ["token-secret", "0123456789abcdé"],
  ])("when %s is %j, then INVALID_ARGUMENT names the key and the pattern, not the value", (key, value) => {
    const msg = invalidMessage(() => validateTypedData(T, data({ ...ok, [key]: value })));
    expect(msg).toMatch(new RegExp(`^data\\["${key}"\\]: must be exactly (6|16) characters of \\[a-z0-9\\]$`));
    expect(msg).not.toContain(value);
  });
  it.each(["token-id", "token-secret"])("when %s is missing, then INVALID_ARGUMENT names it", (key) => {
    const d = data(ok);
    d.delete(key);
    expect(invalidMessage(() => validateTypedData(T, d))).toBe(`data["${key}"]: is required for type ${T}`);
  });
});

describe("nanocl.io/env", () => {
  const T = "nanocl.io/env";
  it("when every key is an environment name, then any value is accepted (empty, with '=' or newlines)", () => {
    expect(validateTypedData(T, data({ FOO: "bar", _X1: "", lower_case: "b=c\nd", A: "ü" })).annotations).toEqual({});
    expect(validateTypedData(T, new Map()).annotations).toEqual({});
  });
  it.each(["1FOO", "FO-O", "a.b", "-x"])("when a key is %j, then INVALID_ARGUMENT names it and the NAME rule, not the value", (key) => {
    const msg = invalidMessage(() => validateTypedData(T, data({ GOOD: "1", [key]: SECRET })));
    expect(msg).toBe(`data[${JSON.stringify(key)}]: the key must be an environment name matching [A-Za-z_][A-Za-z0-9_]*`);
    expect(msg).not.toContain(SECRET);
  });
  it("when a value holds a NUL or is not UTF-8, then it is refused", () => {
    expect(invalidMessage(() => validateTypedData(T, data({ K: "b\0c" })))).toBe('data["K"]: must not contain a NUL character');
    expect(invalidMessage(() => validateTypedData(T, data({ K: BAD_UTF8 })))).toBe('data["K"]: must be valid UTF-8');
  });
});

describe("opensslTimeToRfc3339", () => {
  it("when given OpenSSL's notAfter text, then it returns RFC 3339 UTC with whole seconds", () => {
    expect(opensslTimeToRfc3339("Jan  2 03:04:05 2027 GMT")).toBe("2027-01-02T03:04:05Z");
    expect(opensslTimeToRfc3339("Dec 31 23:59:59 9999 GMT")).toBe("9999-12-31T23:59:59Z");
    expect(opensslTimeToRfc3339("Feb 29 00:00:00 2028 GMT")).toBe("2028-02-29T00:00:00Z");
  });
  it("when the text is not in that form, then it returns undefined", () => {
    expect(opensslTimeToRfc3339("2027-01-02T03:04:05Z")).toBeUndefined();
    expect(opensslTimeToRfc3339("Foo  2 03:04:05 2027 GMT")).toBeUndefined();
  });
});


// Certificates come from the openssl binary; without it these tests are skipped (not faked).
describe.runIf(hasOpenssl)("TLS types", () => {
  let dir = "";
  const pem: Record<string, string> = {};
  const notAfter: Record<string, string> = {};

  function selfSigned(name: string, keyArgs: string[]): void {
    const k = join(dir, `${name}.key`);
    const c = join(dir, `${name}.crt`);
    execFileSync("openssl", ["req", "-x509", "-newkey", ...keyArgs, "-nodes", "-keyout", k, "-out", c, "-days", "30", "-subj", `/CN=${name}`], {
      stdio: "ignore",
    });
    pem[`${name}.key`] = readFileSync(k, "utf8");
    pem[`${name}.crt`] = readFileSync(c, "utf8");
    // Independent of the code under test: openssl's own reading, parsed by Date.
    const end = execFileSync("openssl", ["x509", "-enddate", "-noout", "-in", c], { encoding: "utf8" }).trim();
    notAfter[name] = new Date(end.replace(/^notAfter=/, "")).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "secretd-tls-"));
    selfSigned("rsa", ["rsa:2048"]);
    selfSigned("ec", ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]);
    selfSigned("ed", ["ed25519"]);
    pem.otherKey = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    pem.encryptedKey = generateKeyPairSync("ec", {
      namedCurve: "prime256v1",
      privateKeyEncoding: { type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "pw" },
      publicKeyEncoding: { type: "spki", format: "pem" },
    }).privateKey;
  }, 60_000);

  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  /** Every base64 line of every PEM in play: none may appear in a message. */
  function expectNoPem(msg: string): void {
    expect(msg).not.toContain("-----");
    for (const p of Object.values(pem)) {
      for (const line of p.split("\n")) if (line.length >= 16 && !line.startsWith("-----")) expect(msg).not.toContain(line);
    }
  }

  describe.each([
    ["kubernetes.io/tls", "tls.crt", "tls.key"],
    ["nanocl.io/tls", "Certificate", "CertificateKey"],
  ])("%s", (T, crt, key) => {
    const crtField = `data["${crt}"]`;
    const keyField = `data["${key}"]`;

    it.each(["rsa", "ec", "ed"])("when a %s certificate and its key are given, then notAfter is returned as RFC 3339 UTC", (kind) => {
      const got = validateTypedData(T, data({ [crt]: pem[`${kind}.crt`]!, [key]: pem[`${kind}.key`]!, "ca.crt": "anything" }));
      expect(got).toEqual({ annotations: { [NOT_AFTER_ANNOTATION]: notAfter[kind] } });
      const at = Date.parse(got.annotations[NOT_AFTER_ANNOTATION]!);
      expect(got.annotations[NOT_AFTER_ANNOTATION]).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      expect(Math.abs(at - (Date.now() + 30 * 86_400_000))).toBeLessThan(10 * 60_000);
    });

    it("when the certificate is a chain, then the first (leaf) certificate is the one checked", () => {
      const chain = pem["rsa.crt"]! + pem["ec.crt"]!;
      expect(validateTypedData(T, data({ [crt]: chain, [key]: pem["rsa.key"]! })).annotations[NOT_AFTER_ANNOTATION]).toBe(notAfter.rsa);
      const reversed = pem["ec.crt"]! + pem["rsa.crt"]!;
      expect(invalidMessage(() => validateTypedData(T, data({ [crt]: reversed, [key]: pem["rsa.key"]! })))).toBe(
        `${keyField}: does not match the certificate in ${crtField}`,
      );
    });

    it("when the key belongs to another certificate or to no certificate, then INVALID_ARGUMENT says it does not match", () => {
      for (const other of [pem.otherKey!, pem["ec.key"]!, pem["ed.key"]!]) {
        const msg = invalidMessage(() => validateTypedData(T, data({ [crt]: pem["rsa.crt"]!, [key]: other })));
        expect(msg).toBe(`${keyField}: does not match the certificate in ${crtField}`);
        expectNoPem(msg);
      }
    });

    it("when either key is missing, then INVALID_ARGUMENT names it", () => {
      expect(invalidMessage(() => validateTypedData(T, data({ [key]: pem["rsa.key"]! })))).toBe(`${crtField}: is required for type ${T}`);
      expect(invalidMessage(() => validateTypedData(T, data({ [crt]: pem["rsa.crt"]! })))).toBe(`${keyField}: is required for type ${T}`);
    });

    it.each([
      ["not PEM at all", () => SECRET, "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)"],
      ["a private key", () => pem["rsa.key"]!, "must hold a PEM certificate (-----BEGIN CERTIFICATE-----)"],
      ["a PEM block with a broken body", () => `-----BEGIN CERTIFICATE-----\n${SECRET}\n-----END CERTIFICATE-----\n`, "holds a PEM certificate that does not parse"],
      ["a truncated certificate", () => { const p = pem["rsa.crt"]!; const lines = p.split("\n"); return [...lines.slice(0, 4), ...lines.slice(-2)].join("\n"); }, "holds a PEM certificate that does not parse"],
    ])("when the certificate is %s, then INVALID_ARGUMENT names it without quoting it", (_what, value, rule) => {
      const msg = invalidMessage(() => validateTypedData(T, data({ [crt]: value(), [key]: pem["rsa.key"]! })));
      expect(msg).toBe(`${crtField}: ${rule}`);
      expect(msg).not.toContain(SECRET);
      if (!rule.includes("BEGIN")) expectNoPem(msg);
    });

    it.each([
      ["not PEM at all", () => SECRET],
      ["a certificate", () => pem["rsa.crt"]!],
      ["an encrypted key", () => pem.encryptedKey!],
      ["a PEM block with a broken body", () => `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`],
    ])("when the private key is %s, then INVALID_ARGUMENT names it without quoting it", (_what, value) => {
      const msg = invalidMessage(() => validateTypedData(T, data({ [crt]: pem["rsa.crt"]!, [key]: value() })));
      expect(msg).toBe(`${keyField}: must hold an unencrypted PEM private key that parses`);
      expect(msg).not.toContain(SECRET);
      expectNoPem(msg);
    });
  });
});
