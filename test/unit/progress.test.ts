import { describe, expect, it } from "vitest";
import { progress } from "../../src/cli/progress.js";

function sink(isTTY: boolean): { isTTY: boolean; text: string; write(s: string): void } {
  return { isTTY, text: "", write(s: string) { this.text += s; } };
}

describe("progress", () => {
  it("when stderr is not a terminal, then only the summary is printed", () => {
    const s = sink(false);
    const p = progress("rewrapping", s);
    p.update("1 of 2");
    p.done("done");
    expect(s.text).toBe("done\n");
  });

  it("when stderr is a terminal, then one line is rewritten at most every 100 ms and erased at the end", () => {
    const s = sink(true);
    let t = 0;
    const p = progress("rewrapping", s, () => t);
    p.update("1");
    t = 50;
    p.update("2");
    t = 150;
    p.update("3");
    p.done("finished");
    expect(s.text).toBe("\r\x1b[Krewrapping: 1\r\x1b[Krewrapping: 3\r\x1b[Kfinished\n");
  });
});
