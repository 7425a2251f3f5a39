/**
 * Every error altplat raises on purpose is an AltplatError with a stable, machine-readable `code`
 * (a reason code such as `DEF_NOT_WELL_FORMED` or `REPLY_BAD_FILENAME`) and a message written for a
 * volunteer. Callers branch on `code`, never on the message text.
 */
export class AltplatError extends Error {
  readonly code: string;
  readonly details?: Record<string, unknown>;

  constructor(code: string, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AltplatError';
    this.code = code;
    this.details = details;
  }
}

export function isAltplatError(e: unknown, code?: string): e is AltplatError {
  return e instanceof AltplatError && (code === undefined || e.code === code);
}

/** Node's errno code of a failed system call (ENOENT, EEXIST, ...), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
