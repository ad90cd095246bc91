import { describe, expect, it } from "vitest";
import { Timestamp } from "../../src/gen/google/protobuf/timestamp.js";
import { GrantAccessRequest } from "../../src/gen/secrets/v1/secrets.js";
import { checkRequest, requestDescriptor } from "../../src/transport/grpc/request-check.js";
import { emittedTime, MAX_TIMESTAMP_MS, timestampMs, timestampProblem } from "../../src/transport/grpc/timestamps.js";

describe("Timestamp to epoch milliseconds", () => {
  it("when nanos are just below the next second, then the result is truncated, never rounded up", () => {
    expect(timestampMs(253_402_300_799n, 999_999_999)).toBe(MAX_TIMESTAMP_MS);
    expect(new Date(timestampMs(253_402_300_799n, 999_999_999)).toISOString()).toBe("9999-12-31T23:59:59.999Z");
    expect(timestampMs(1_700_000_000n, 999_999_900)).toBe(1_700_000_000_999);
    expect(timestampMs(1_700_000_000n, 1_999_999)).toBe(1_700_000_000_001);
    // What ts-proto's floating-point conversion gives for the same input: the next second.
    expect(new Date(1_700_000_000 * 1000 + 999_999_900 / 1e6).getTime()).toBe(1_700_000_001_000);
  });

  it("when seconds or nanos are outside Timestamp's range, then it says so", () => {
    expect(timestampProblem(253_402_300_799n, 999_999_999)).toBeUndefined();
    expect(timestampProblem(-62_135_596_800n, 0)).toBeUndefined();
    expect(timestampProblem(253_402_300_800n, 0)).toEqual({ field: "seconds", rule: expect.stringMatching(/9999-12-31/) });
    expect(timestampProblem(-62_135_596_801n, 0)).toEqual({ field: "seconds", rule: expect.stringMatching(/0001-01-01/) });
    expect(timestampProblem(0n, 1_000_000_000)?.field).toBe("nanos");
    expect(timestampProblem(0n, -1)?.field).toBe("nanos");
  });

  it("when a stored time is past the range, then the emitted Date is held inside it", () => {
    expect(emittedTime(253_402_300_800_000).getTime()).toBe(MAX_TIMESTAMP_MS);
    expect(emittedTime(1234).getTime()).toBe(1234);
  });

  it("when a request carries a Timestamp, then the wire check returns its exact value where the decoder puts it", () => {
    const ts = Timestamp.encode({ seconds: 253_402_300_799, nanos: 999_999_999 }).finish();
    const body = Buffer.concat([
      GrantAccessRequest.encode(GrantAccessRequest.fromPartial({ mesh: "m", name: "n", subject: "user:x" })).finish(),
      Buffer.from([(6 << 3) | 2, ts.length]),
      ts,
    ]);
    const r = checkRequest(requestDescriptor("/secrets.v1.SecretService/GrantAccess")!, body);
    expect(r).toEqual({ timestamps: [{ path: ["expireTime"], ms: MAX_TIMESTAMP_MS }] });
  });
});
