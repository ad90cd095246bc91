/** The call pipeline (pipeline.ts, call-steps.ts): composed steps, the ledger's refusal, the call's AbortSignal. */
import type http2 from "node:http2";
import { Metadata, status as Status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { SecretdError } from "../../src/errors.js";
import { ledgerStep, requestIdStep } from "../../src/transport/grpc/call-steps.js";
import { compose, PipelineCall, type Step } from "../../src/transport/grpc/pipeline.js";
import { toStatus } from "../../src/transport/grpc/status.js";

function incoming(md = new Metadata()): { metadata: Metadata; request: unknown; getPeer(): string; http2Stream: http2.ServerHttp2Stream } {
  return { metadata: md, request: {}, getPeer: () => "peer", http2Stream: { writableLength: 0 } as http2.ServerHttp2Stream };
}

describe("call pipeline", () => {
  it("when steps are composed, then each moment runs them in list order and the last after them", async () => {
    const seen: string[] = [];
    const step = (name: string): Step => ({
      open: (_c, next) => (seen.push(`open ${name}`), next()),
      answer: (_c, _m, next) => (seen.push(`answer ${name}`), next()),
      end: (_c, o, next) => (seen.push(`end ${name} ${Status[o.code]}`), next()),
    });
    const p = compose([step("a"), { end: (_c, _o, next) => next() }, step("b")]);
    const call = new PipelineCall("M", incoming(), undefined);
    await p.open(call, async () => void seen.push("handler"));
    p.answer(call, {}, () => seen.push("write"));
    p.end(call, { code: Status.OK });
    expect(seen).toEqual(["open a", "open b", "handler", "answer a", "answer b", "write", "end a OK", "end b OK"]);
  });

  it("when the caller's x-request-id is a plain identifier, then the call keeps it; otherwise it gets a fresh one", async () => {
    const md = new Metadata();
    md.set("x-request-id", "abc-1");
    const kept = new PipelineCall("M", incoming(md), undefined);
    await compose([requestIdStep]).open(kept, async () => undefined);
    expect(kept.requestId).toBe("abc-1");
    const bad = new Metadata();
    bad.set("x-request-id", "no spaces please");
    const fresh = new PipelineCall("M", incoming(bad), undefined);
    await compose([requestIdStep]).open(fresh, async () => undefined);
    expect(fresh.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("when the ledger refuses an answer, then the step throws its SecretdError (RESOURCE_EXHAUSTED via status.ts) and nothing is written", () => {
    const refusal = new SecretdError("RESOURCE_EXHAUSTED", "too much unread");
    let wrote = 0;
    const p = compose([ledgerStep({ admit: () => refusal, wrote: () => void wrote++ })]);
    const call = new PipelineCall("M", incoming(), undefined);
    call.principal = { sub: "s", tenant: "t", roles: [], meshes: [] } as unknown as NonNullable<PipelineCall["principal"]>;
    let written = false;
    expect(() => p.answer(call, {}, () => void (written = true))).toThrow(refusal);
    expect(written).toBe(false);
    expect(wrote).toBe(0);
    expect(toStatus(refusal, "rid").code).toBe(Status.RESOURCE_EXHAUSTED);
  });

  it("when a call is cancelled, then its context's signal is aborted, whether asked for before or after", () => {
    const before = new PipelineCall("M", incoming(), undefined);
    const signal = before.context().signal;
    expect(signal.aborted).toBe(false);
    before.cancel();
    expect(signal.aborted).toBe(true);
    const after = new PipelineCall("M", incoming(), undefined);
    after.cancel();
    expect(after.context().signal.aborted).toBe(true);
  });
});
