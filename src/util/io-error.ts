import { AltplatError, errnoCode } from '../errors.js';

/** What a volunteer should read for the errno codes a full or failing disk gives. */
const WHY: Record<string, string> = {
  ENOSPC: 'no space left on the device', EDQUOT: 'disk quota exceeded', EIO: 'input/output error',
  EROFS: 'read-only file system', EACCES: 'permission denied', EPERM: 'operation not permitted',
  EMFILE: 'too many open files', ENFILE: 'too many open files in the system', EFBIG: 'file too large',
};

/**
 * Any failure of a file operation as a named reason: an AltplatError passes through; a Node system error
 * becomes `IO_<errno>` (IO_ENOSPC, IO_EIO, …) with what was being done, so a report can carry it instead
 * of the run ending with a stack trace.
 */
export function ioError(e: unknown, doing: string): AltplatError {
  if (e instanceof AltplatError) return e;
  const errno = errnoCode(e);
  const code: `IO_${string}` = errno ? `IO_${errno}` : 'IO_ERROR';
  const why = errno && WHY[errno] ? WHY[errno] : (e as Error)?.message ?? String(e);
  return new AltplatError(code, `${doing}: ${why}`, { errno }, { cause: e });
}
