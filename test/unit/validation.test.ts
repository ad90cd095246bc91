import { describe, expect, it } from "vitest";
import { KNOWN_SECRET_TYPES } from "../../src/domain/secret-types.js";
import {
  matchesSelector,
  mergeData,
  parseLabelSelector,
  validateAnnotations,
  validateDataKey,
  validateDescription,
  validateLabels,
  validateMesh,
  validateName,
  validateType,
} from "../../src/domain/validation.js";
import { invalidMessage } from "../helpers/errors.js";

const MiB = 1024 * 1024;


function entries(n: number, value = "v"): Record<string, string> {
  return Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));
}

describe("validateName", () => {
  it.each(["a", "0", "abc", "a-b", "a.b.c", "a-1.b-2", "0abc9", "a".repeat(253), `${"a".repeat(100)}.b`])(
    "when the name is %j, then it is accepted",
    (name) => expect(() => validateName(name)).not.toThrow(),
  );

  it.each(["A", "Bad", "-a", "a-", ".a", "a.", "a..b", "a.-b", "a-.b", "a_b", "a b", "a/b", "ü", " a"])(
    "when the name is %j, then INVALID_ARGUMENT names the DNS-1123 subdomain rule",
    (name) => expect(invalidMessage(() => validateName(name))).toMatch(/^name: must be a DNS-1123 subdomain/),
  );

  it("when the name is empty, then it is refused as empty", () => {
    expect(invalidMessage(() => validateName(""))).toBe("name: must not be empty");
  });

  it("when the name is 253 characters, then it is accepted; at 254, then refused for length", () => {
    expect(() => validateName("a".repeat(253))).not.toThrow();
    expect(invalidMessage(() => validateName("a".repeat(254)))).toBe("name: must be at most 253 characters");
  });

  it("when a field name is given, then the message names that field", () => {
    expect(invalidMessage(() => validateName("Bad", "items[0].name"))).toMatch(/^items\[0\]\.name: /);
  });
});

describe("validateMesh", () => {
  it.each(["", "default", "m", "a-b", "0", "a".repeat(63)])("when the mesh is %j, then it is accepted", (mesh) =>
    expect(() => validateMesh(mesh)).not.toThrow(),
  );

  it.each(["a.b", "A", "-a", "a-", "a_b", "a b"])("when the mesh is %j, then INVALID_ARGUMENT names the label rule", (mesh) =>
    expect(invalidMessage(() => validateMesh(mesh))).toMatch(/^mesh: must be empty or a DNS-1123 label/),
  );

  it("when the mesh is 64 characters, then it is refused for length", () => {
    expect(invalidMessage(() => validateMesh("a".repeat(64)))).toBe("mesh: must be empty or at most 63 characters");
  });
});

describe("validateDataKey", () => {
  it.each(["a", "tls.crt", ".dockerconfigjson", "_x", "-x", "a..b", "A.b-c_D", "x".repeat(253)])(
    "when the key is %j, then it is accepted",
    (key) => expect(() => validateDataKey(key, "data")).not.toThrow(),
  );

  it.each([
    ["", "key must not be empty"],
    [".", "key must not be '.' or '..'"],
    ["..", "key must not be '.' or '..'"],
    ["..a", "key must not start with '..'"],
    ["a/b", "key must consist of alphanumerics"],
    ["a b", "key must consist of alphanumerics"],
    ["ключ", "key must consist of alphanumerics"],
    ["x".repeat(254), "key must be at most 253 characters"],
  ])("when the key is %j, then INVALID_ARGUMENT says %j", (key, rule) => {
    expect(invalidMessage(() => validateDataKey(key, "keys[2]"))).toContain(`keys[2]: ${rule}`);
  });
});

describe("mergeData", () => {
  it("when string_data and data share a key, then string_data wins, UTF-8 encoded", () => {
    const out = mergeData({ a: Buffer.from("1"), b: new Uint8Array([0, 255]) }, { b: "é", c: "3" });
    expect([...out.keys()]).toEqual(["a", "b", "c"]);
    expect(out.get("a")).toEqual(Buffer.from("1"));
    expect(out.get("b")).toEqual(Buffer.from([0xc3, 0xa9]));
    expect(Buffer.isBuffer(out.get("b"))).toBe(true);
    expect(out.get("c")).toEqual(Buffer.from("3"));
  });

  it("when a plain Uint8Array is given, then it comes back as a Buffer with the same bytes", () => {
    const u = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
    const out = mergeData({ k: u }, {});
    expect(Buffer.isBuffer(out.get("k"))).toBe(true);
    expect([...out.get("k")!]).toEqual([8, 7]);
  });

  it("when both maps are empty, then the result is empty", () => {
    expect(mergeData({}, {}).size).toBe(0);
  });

  it("when a data key is bad, then the field is data[\"key\"]", () => {
    expect(invalidMessage(() => mergeData({ "a/b": Buffer.from("v") }, {}))).toMatch(/^data\["a\/b"\]: key must consist/);
  });

  it("when a string_data key is bad, then the field is string_data[\"key\"]", () => {
    expect(invalidMessage(() => mergeData({}, { "..": "v" }))).toMatch(/^string_data\["\.\."\]: key must not be/);
  });

  it("when keys plus values total exactly 1 MiB, then it is accepted; one byte more, then refused with the size", () => {
    expect(mergeData({ big: Buffer.alloc(MiB - 3) }, {}).get("big")!.length).toBe(MiB - 3);
    expect(invalidMessage(() => mergeData({ big: Buffer.alloc(MiB - 2) }, {}))).toBe(
      "data: total size 1048577 exceeds 1048576 bytes",
    );
  });

  it("when sizes are counted, then every key and value of both maps counts, and string_data in UTF-8 bytes", () => {
    expect(() => mergeData({ a: Buffer.alloc(MiB / 2) }, { b: "x".repeat(MiB / 2 - 2) })).not.toThrow();
    expect(invalidMessage(() => mergeData({ a: Buffer.alloc(MiB / 2) }, { b: "x".repeat(MiB / 2 - 1) }))).toMatch(
      /^data: total size 1048577 /,
    );
    // "é" is two bytes: 1 (key) + 2 * 524288 > 1 MiB.
    expect(invalidMessage(() => mergeData({}, { k: "é".repeat(MiB / 2) }))).toMatch(/^data: total size 1048577 /);
  });

  it("when string_data replaces a large data value, then only the merged result counts", () => {
    expect(mergeData({ k: Buffer.alloc(MiB) }, { k: "small" }).get("k")).toEqual(Buffer.from("small"));
  });
});

describe("validateLabels", () => {
  it("when keys and values follow the Kubernetes rules, then they are accepted", () => {
    expect(() =>
      validateLabels({
        app: "web",
        "example.com/tier": "front-end",
        "a.b-c/D_e.F": "v1.2_3-x",
        empty: "",
        ["k".repeat(63)]: "v".repeat(63),
        [`${"p".repeat(253)}/n`]: "x",
      }),
    ).not.toThrow();
  });

  it.each([
    ["-bad", "key name must be 1-63 characters"],
    ["bad-", "key name must be 1-63 characters"],
    ["a b", "key name must be 1-63 characters"],
    ["", "key name must not be empty"],
    ["a/", "key name must not be empty"],
    ["/n", "key prefix before '/' must not be empty"],
    ["a/b/c", "at most one '/'"],
    ["Example.com/n", "key prefix must be a DNS-1123 subdomain"],
    ["k".repeat(64), "key name must be at most 63 characters"],
    [`${"p".repeat(254)}/n`, "key prefix must be at most 253 characters"],
  ])("when a label key is %j, then INVALID_ARGUMENT names labels[key] and says %j", (key, rule) => {
    const msg = invalidMessage(() => validateLabels({ [key]: "v" }));
    expect(msg.startsWith(`labels[${JSON.stringify(key.length > 80 ? `${key.slice(0, 80)}…` : key)}]: `)).toBe(true);
    expect(msg).toContain(rule);
  });

  it.each(["v".repeat(64), "-v", "v-", "a b", "a/b", "ü"])("when a label value is %j, then it is refused without echoing it", (value) => {
    const msg = invalidMessage(() => validateLabels({ app: value }));
    expect(msg).toMatch(/^labels\["app"\]: value must be/);
    expect(msg).not.toContain(value);
  });

  it("when there are 64 labels, then they are accepted; at 65, then the cap is named", () => {
    expect(() => validateLabels(entries(64))).not.toThrow();
    expect(invalidMessage(() => validateLabels(entries(65)))).toBe("labels: must have at most 64 entries (got 65)");
  });

  it("when a field name is given, then the message names that field", () => {
    expect(invalidMessage(() => validateLabels({ "-x": "" }, "metadata.labels"))).toMatch(/^metadata\.labels\["-x"\]: /);
  });
});

describe("validateAnnotations", () => {
  it("when keys are qualified names, then any value is accepted, and upper case in the prefix is allowed", () => {
    expect(() =>
      validateAnnotations({
        "kubesphere.io/alias": "My Secret ✓",
        "Example.COM/Note": "multi\nline {json: true}",
        plain: "",
      }),
    ).not.toThrow();
  });

  it.each(["a/b/c", "-x", "", "/x", "k".repeat(64)])("when an annotation key is %j, then it is refused", (key) => {
    expect(invalidMessage(() => validateAnnotations({ [key]: "v" }))).toMatch(/^annotations\[".*"\]: key /);
  });

  it("when keys plus values total exactly 256 KiB, then they are accepted; one byte more, then refused with the size", () => {
    expect(() => validateAnnotations({ a: "x".repeat(262143) })).not.toThrow();
    expect(invalidMessage(() => validateAnnotations({ a: "x".repeat(262144) }))).toBe(
      "annotations: total size 262145 exceeds 262144 bytes",
    );
    expect(invalidMessage(() => validateAnnotations({ a: "é".repeat(131072) }))).toMatch(/total size 262145 /);
  });

  it("when there are 128 annotations, then they are accepted; at 129, then the cap is named", () => {
    expect(() => validateAnnotations(entries(128))).not.toThrow();
    expect(invalidMessage(() => validateAnnotations(entries(129)))).toBe("annotations: must have at most 128 entries (got 129)");
  });
});

describe("validateType", () => {
  it("when the type is empty, then the effective type is Opaque", () => {
    expect(validateType("")).toBe("Opaque");
  });

  it("when the type is one of SPEC §5's known types, then it is returned as is", () => {
    expect([...KNOWN_SECRET_TYPES].sort()).toEqual(
      [
        "Opaque",
        "bootstrap.kubernetes.io/token",
        "kubernetes.io/basic-auth",
        "kubernetes.io/dockercfg",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/service-account-token",
        "kubernetes.io/ssh-auth",
        "kubernetes.io/tls",
        "nanocl.io/env",
        "nanocl.io/tls",
      ].sort(),
    );
    for (const t of KNOWN_SECRET_TYPES) expect(validateType(t)).toBe(t);
  });

  it.each(["example.com/my-type", "a/b", "acme.io/Thing_v1.2", "kubernetes.io/custom"])(
    "when a custom type is %j, then it is accepted",
    (t) => expect(validateType(t)).toBe(t),
  );

  it.each(["NotAType", "opaque", "Example.com/x", "a/b/c", "/x", "a/", "-a/x", "a/ x"])(
    "when the type is %j, then INVALID_ARGUMENT names type and the domain/name rule",
    (t) => expect(invalidMessage(() => validateType(t))).toMatch(/^type: must be a known type .* or look like domain\/name$/),
  );

  it("when a custom type is 253 characters, then it is accepted; at 254, then refused for length", () => {
    expect(validateType(`${"a".repeat(251)}/b`)).toHaveLength(253);
    expect(invalidMessage(() => validateType(`${"a".repeat(252)}/b`))).toBe("type: must be at most 253 characters");
  });
});

describe("validateDescription", () => {
  it.each(["", "plain", "multi\nline\twith tab", "ünïcödé ✓"])("when the description is %j, then it is accepted", (d) =>
    expect(() => validateDescription(d)).not.toThrow(),
  );

  it("when the description is 4096 characters (also astral ones), then it is accepted; at 4097, then refused", () => {
    expect(() => validateDescription("x".repeat(4096))).not.toThrow();
    expect(() => validateDescription("😀".repeat(4096))).not.toThrow();
    expect(invalidMessage(() => validateDescription("x".repeat(4097)))).toBe("description: must be at most 4096 characters");
    expect(invalidMessage(() => validateDescription("😀".repeat(4097)))).toBe("description: must be at most 4096 characters");
  });

  it.each(["a\rb", "a\u0000b", "a\u0007b", "a\u001bb", "a\u007fb", "a\u0085b"])(
    "when the description holds control character %j, then it is refused",
    (d) => expect(invalidMessage(() => validateDescription(d))).toBe("description: must not contain control characters other than newline and tab"),
  );
});

describe("parseLabelSelector", () => {
  const labels = { app: "web", env: "prod", n: "10", empty: "", "example.com/team": "core" };
  const matches = (s: string, l: Record<string, string> = labels) => matchesSelector(parseLabelSelector(s), l);

  it("when the selector is empty or blank, then it has no requirements and matches everything", () => {
    expect(parseLabelSelector("")).toEqual([]);
    expect(parseLabelSelector("  \t ")).toEqual([]);
    expect(matches("", {})).toBe(true);
  });

  it("when each operator is parsed, then it becomes the matching requirement", () => {
    expect(parseLabelSelector("app=web")).toEqual([{ op: "in", key: "app", values: new Set(["web"]) }]);
    expect(parseLabelSelector("app==web")).toEqual([{ op: "in", key: "app", values: new Set(["web"]) }]);
    expect(parseLabelSelector("app!=web")).toEqual([{ op: "notin", key: "app", values: new Set(["web"]) }]);
    expect(parseLabelSelector("env in (prod,staging)")).toEqual([{ op: "in", key: "env", values: new Set(["prod", "staging"]) }]);
    expect(parseLabelSelector("env notin (dev)")).toEqual([{ op: "notin", key: "env", values: new Set(["dev"]) }]);
    expect(parseLabelSelector("tier")).toEqual([{ op: "exists", key: "tier" }]);
    expect(parseLabelSelector("!tier")).toEqual([{ op: "notexists", key: "tier" }]);
    expect(parseLabelSelector("n>5")).toEqual([{ op: "gt", key: "n", value: 5n }]);
    expect(parseLabelSelector("n<5")).toEqual([{ op: "lt", key: "n", value: 5n }]);
  });

  it("when whitespace surrounds tokens, then it is ignored", () => {
    expect(parseLabelSelector("  app = web ,env   in ( prod , staging ) ,  ! legacy , tier  ")).toEqual([
      { op: "in", key: "app", values: new Set(["web"]) },
      { op: "in", key: "env", values: new Set(["prod", "staging"]) },
      { op: "notexists", key: "legacy" },
      { op: "exists", key: "tier" },
    ]);
    expect(parseLabelSelector("env in(prod)")).toEqual([{ op: "in", key: "env", values: new Set(["prod"]) }]);
  });

  it("when a value is left empty, then it selects the empty label value, as in Kubernetes", () => {
    expect(parseLabelSelector("empty=")).toEqual([{ op: "in", key: "empty", values: new Set([""]) }]);
    expect(parseLabelSelector("env in (prod,)")).toEqual([{ op: "in", key: "env", values: new Set(["prod", ""]) }]);
    expect(matches("empty=")).toBe(true);
    expect(matches("app=")).toBe(false);
  });

  it.each([
    ["app=web", true],
    ["app==web", true],
    ["app=api", false],
    ["missing=web", false],
    ["app!=api", true],
    ["app!=web", false],
    ["missing!=web", true],
    ["env in (prod,staging)", true],
    ["env in (dev,staging)", false],
    ["missing in (prod)", false],
    ["env notin (dev)", true],
    ["env notin (prod)", false],
    ["missing notin (prod)", true],
    ["app", true],
    ["missing", false],
    ["empty", true],
    ["!missing", true],
    ["!app", false],
    ["n>9", true],
    ["n>10", false],
    ["n<11", true],
    ["n<10", false],
    ["app>1", false],
    ["missing<100", false],
    ["n>-1", true],
    ["example.com/team=core", true],
    ["app=web,env=prod,!legacy", true],
    ["app=web,env=dev", false],
  ])("when the selector is %j, then matching returns %s", (s, want) => {
    expect(matches(s)).toBe(want);
  });

  it("when a label is inherited from the prototype, then it does not count as present", () => {
    expect(matches("constructor", {})).toBe(false);
    expect(matches("!toString", {})).toBe(true);
  });

  it.each([
    ",",
    "app=web,",
    ",app=web",
    "a,,b",
    "app web",
    "app = web = x",
    "app=web)",
    "env in prod",
    "env in (a",
    "env in (a b)",
    "env in",
    "!",
    "!app=web",
    "!!app",
    "=web",
    "(a)",
    "app=(web)",
    "n > x",
    "n >",
    "n > 1.5",
    "app ! = web",
  ])("when the selector %j has bad syntax, then INVALID_ARGUMENT names label_selector and the position", (s) => {
    expect(invalidMessage(() => parseLabelSelector(s))).toMatch(/^label_selector: at position \d+: expected .*, found /);
  });

  it("when a value set is empty, then it is refused", () => {
    expect(invalidMessage(() => parseLabelSelector("env in ()"))).toBe('label_selector: key "env": the value set must not be empty');
  });

  it.each(["-app=web", "a/b/c", `${"k".repeat(64)}=v`, "Example.com/x=y", "app=-web", "app=a/b", `app=${"v".repeat(64)}`, "env in (ok, bad-)"])(
    "when the selector %j holds a bad label key or value, then INVALID_ARGUMENT names label_selector and the rule",
    (s) => expect(invalidMessage(() => parseLabelSelector(s))).toMatch(/^label_selector: label ".*": (key|value) /),
  );
});

describe("messages never carry values", () => {
  const SECRET = "Hunter2SECRETvalue";
  const cases: Array<[string, () => unknown]> = [
    ["a label value", () => validateLabels({ app: `${SECRET}-` })],
    ["a too-long label value", () => validateLabels({ app: SECRET.repeat(5) })],
    ["a description", () => validateDescription(`${SECRET}\u0000`)],
    ["a long description", () => validateDescription(SECRET.repeat(500))],
    ["an oversized annotation", () => validateAnnotations({ a: SECRET.repeat(20000) })],
    ["oversized data", () => mergeData({ k: Buffer.from(SECRET.repeat(60000)) }, {})],
    ["oversized string_data", () => mergeData({}, { k: SECRET.repeat(60000) })],
    ["a bad key next to a value", () => mergeData({ ok: Buffer.from(SECRET) }, { "bad/key": SECRET })],
    ["a selector value", () => parseLabelSelector(`app=${SECRET}-`)],
    ["a selector value set", () => parseLabelSelector(`app in (${SECRET}, -x)`)],
  ];
  it.each(cases)("when %s is refused, then the message does not contain it", (_what, fn) => {
    expect(invalidMessage(fn)).not.toContain(SECRET);
  });
});
