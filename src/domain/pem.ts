/**
 * PEM blocks found in linear time: indexOf for the markers, never a backtracking regex
 * (a value of a million BEGIN markers with no END made `BEGIN[\s\S]*?END` quadratic:
 * seconds on the event loop for every other caller).
 */

export interface PemBlock {
  /** The label between "-----BEGIN " and "-----", e.g. "CERTIFICATE". */
  readonly label: string;
  /** The body, base64 decoded (whitespace ignored). */
  readonly der: Buffer;
  /** The whole block, BEGIN line to END line. */
  readonly text: string;
}

const BASE64_BODY = /^[A-Za-z0-9+/=\s]*$/;

/**
 * The first well-formed PEM block labelled `label` in `text`, or undefined. Every
 * character is looked at a bounded number of times, whatever the input.
 */
export function firstPemBlock(text: string, label: string): PemBlock | undefined {
  const beginLine = `-----BEGIN ${label}-----`;
  const endLine = `-----END ${label}-----`;
  let end = -1;
  let begin = text.indexOf(beginLine);
  while (begin >= 0) {
    const bodyStart = begin + beginLine.length;
    if (end < bodyStart) {
      end = text.indexOf(endLine, bodyStart);
      if (end < 0) return undefined;
    }
    // Scans from here to the next BEGIN: the regions scanned never overlap.
    const next = text.indexOf(beginLine, bodyStart);
    if (next < 0 || next > end) {
      const body = text.slice(bodyStart, end);
      if (BASE64_BODY.test(body)) {
        return { label, der: Buffer.from(body.replace(/\s+/g, ""), "base64"), text: text.slice(begin, end + endLine.length) };
      }
    }
    begin = next;
  }
  return undefined;
}

/** The label of the first BEGIN line in `text` (at most 64 characters), or undefined. */
export function firstPemLabel(text: string): string | undefined {
  const begin = text.indexOf("-----BEGIN ");
  if (begin < 0) return undefined;
  const start = begin + "-----BEGIN ".length;
  const end = text.indexOf("-----", start);
  if (end < 0 || end - start > 64) return undefined;
  return text.slice(start, end);
}
