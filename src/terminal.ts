// Text from strangers made safe for the operator's terminal: control characters (escape sequences that
// clear the screen or retitle the window, NUL, carriage returns that overwrite a line, C1 controls) and
// bidirectional overrides that reorder what is read are shown as visible \uXXXX escapes, never acted on.

// C0 controls except tab and newline, DEL, C1, and the bidi marks/overrides/isolates (and the JSON line
// separators JSON.stringify leaves raw).
const UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const UNSAFE_LINE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with every unsafe character shown as an escape; `oneLine` escapes tabs and newlines too. */
export function terminalSafe(text: string, opts: { oneLine?: boolean } = {}): string {
  return text.replace(opts.oneLine ? UNSAFE_LINE : UNSAFE, escape);
}

/** One JSON line whose text is safe on a terminal (still valid JSON: the escapes are JSON escapes). */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(UNSAFE, escape);
}
