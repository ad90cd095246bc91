import { describe, expect, it } from "vitest";
import { DEFAULT_SERVER } from "../../src/client/client.js";
import { parseServerAddress } from "../../src/client/server-address.js";
import { invalidMessage } from "../helpers/errors.js";

const refusal = (v: string): string => invalidMessage(() => parseServerAddress(v));

describe("parseServerAddress", () => {
  it("when the port is omitted, then it is 50051 (not 443)", () => {
    expect(parseServerAddress("localhost")).toEqual({ host: "localhost", port: 50051, target: "localhost:50051" });
    expect(parseServerAddress("10.0.0.7").target).toBe("10.0.0.7:50051");
    expect(parseServerAddress("::1").target).toBe("[::1]:50051");
    expect(parseServerAddress("[::1]").target).toBe("[::1]:50051");
  });

  it("when no --server is given at all, then the client dials 127.0.0.1:50051", () => {
    expect(parseServerAddress(DEFAULT_SERVER)).toEqual({ host: "127.0.0.1", port: 50051, target: "127.0.0.1:50051" });
  });

  it("when host and port are given, then both are kept", () => {
    expect(parseServerAddress("secretd.example.com:8443")).toEqual({ host: "secretd.example.com", port: 8443, target: "secretd.example.com:8443" });
    expect(parseServerAddress("[fe80::1]:9000")).toEqual({ host: "fe80::1", port: 9000, target: "[fe80::1]:9000" });
  });

  it("when the address is a URL, has a bad port or is not a host, then it is refused naming --server", () => {
    for (const bad of ["http://localhost:50051", "https://x", "nohost:xx", "host:0", "host:65536", "a b", "host/path", "[nope]:1", "", ":50051"]) {
      expect(refusal(bad)).toMatch(/^--server: /);
    }
    expect(refusal("http://x")).toContain("URL");
    expect(refusal("nohost:xx")).toContain("port");
  });
});
