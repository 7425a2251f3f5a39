import type { InvalidCode, UnsupportedCode } from './definition/reasons.js';

/** Prefixes of the XML reader's codes (src/util/xml.ts parseXml: `<PREFIX>_TOO_LARGE`, …). */
export type XmlCodePrefix = 'DEF' | 'PREFS' | 'JOB' | 'REPLY' | 'VMCONFIG' | 'INIT_DATA' | 'REQUEST' | 'ACCOUNT' | 'CONTAINER_CONFIG';
type XmlCode = `${XmlCodePrefix}_${'TOO_LARGE' | 'DOCTYPE' | 'NOT_WELL_FORMED'}`;

/**
 * Every code an AltplatError can carry. The constructor takes only these, so a code that is not listed
 * here does not compile: the union is complete by construction. Add a code here when you add a throw.
 */
export type AltplatErrorCode =
  | InvalidCode | UnsupportedCode | XmlCode
  // data dir and client
  | 'DATA_DIR_MISSING' | 'DATA_DIR_NOT_A_FOLDER' | 'DATA_DIR_UNREADABLE' | 'DATA_DIR_IN_USE' | 'CLIENT_CLOSED'
  | 'BAD_PLATFORM_NAME' | 'PLATFORM_DIR_RELATIVE' | 'PLATFORM_UNAVAILABLE' | 'OUTSIDE_OWNED_DIR' | 'NOT_A_DIRECTORY'
  // install / verify
  | 'INSTALL_CHANGED' | 'INSTALL_EXISTS' | 'INSTALL_INVALID' | 'INSTALL_SOURCE' | 'VERIFY_NOT_FOUND'
  // scheduler request and reply, project identity
  | 'REQUEST_NOT_SCHEDULER_REQUEST' | 'REQUEST_NO_PLATFORM_NAME'
  | 'REPLY_BAD_FILENAME' | 'REPLY_NO_MASTER_URL' | 'REPLY_NO_ROOT' | 'REPLY_UNREADABLE'
  | 'REPLY_MASTER_URL_MISMATCH' | 'PROJECT_URL_UNSAFE'
  // files and owned folders (issue 9: nothing through a link)
  | 'INPUT_MD5_MISMATCH' | 'INPUT_MISSING' | 'INPUT_SIZE_MISMATCH' | 'INPUT_HARD_LINKED' | 'INPUT_OUTSIDE_DATA_DIR'
  | 'NOT_A_REGULAR_FILE' | 'OUTPUT_PATH_IS_A_FOLDER' | 'OUTPUT_PATH_PLANTED' | 'OWNED_DIR_MISSING' | 'OWNED_DIR_NOT_REAL'
  // a failed file operation: IO_<errno> (IO_ENOSPC, IO_EIO, …) or IO_ERROR (src/util/io-error.ts)
  | `IO_${string}`
  // tasks
  | 'TASK_COULDNT_START' | 'TASK_UNKNOWN' | 'TASK_AMBIGUOUS' | 'TASK_NOT_RUNNING' | 'TASK_BAD_REQUEST' | 'TASK_FAILED'
  | 'TASK_NO_RUNNER' | 'TASK_TIMEOUT' | 'RUN_ALREADY_ACTIVE' | 'CONTROL_SOCKET_PATH_TOO_LONG'
  | 'NO_FREE_SLOT' | 'SLOT_REPLACED' | 'MAIN_PROGRAM_NOT_EXECUTABLE' | 'LIFECYCLE_ERROR'
  | 'JOURNAL_CORRUPT' | 'JOURNAL_NO_TASK' | 'JOURNAL_VERSION'
  // app side: BOINC's channel, init_data.xml, the job file
  | 'IPC_CLOSED' | 'IPC_LOCK_FAILED' | 'IPC_MMAP_CREATE_FAILED' | 'IPC_MMAP_OPEN_FAILED' | 'IPC_MMAP_TOO_SMALL' | 'IPC_STANDALONE'
  | 'INIT_DATA_BAD_NUMBER' | 'INIT_DATA_MISSING' | 'INIT_DATA_MISSING_ELEMENT'
  | 'JOB_BAD_OPEN_NAME' | 'JOB_INPUT_MISSING' | 'JOB_MISSING_ELEMENT' | 'JOB_BAD_VALUE'
  // the reference QEMU manager
  | 'MANAGER_NO_PROGRAM' | 'MANAGER_USAGE'
  | 'QGA_COMMAND_FAILED' | 'QGA_FILE_TOO_LARGE' | 'QGA_TIMEOUT'
  | 'QMP_COMMAND_FAILED' | 'QMP_HMP_ERROR' | 'QMP_JOB_FAILED' | 'QMP_TIMEOUT'
  | 'VMCONFIG_BAD_PATH' | 'VMCONFIG_BAD_VALUE' | 'VMCONFIG_MISSING_ELEMENT' | 'VMCONFIG_UNREADABLE'
  | 'VM_AGENT_FAILED' | 'VM_BOOT_TIMEOUT' | 'VM_EXITED' | 'VM_IMAGE_UNREADABLE' | 'VM_KERNEL_PANIC' | 'VM_KVM_FAILED'
  | 'VM_OVERLAY_FAILED' | 'VM_SOCKET_CLOSED' | 'VM_SOCKET_CONNECT' | 'VM_START_FAILED' | 'VM_CPU_MODEL_UNAVAILABLE'
  | 'VM_GUEST_PREPARE_FAILED' | 'VM_INCOMING_FAILED' | 'VM_JOB_DISK_FAILED' | 'VM_SAVE_FAILED'
  // the reference container manager
  | 'CONTAINER_CONFIG_BAD_PATH' | 'CONTAINER_CONFIG_BAD_VALUE' | 'CONTAINER_CONFIG_MISSING_ELEMENT' | 'CONTAINER_CONFIG_UNREADABLE'
  | 'CONTAINER_ENGINE_MISSING' | 'CONTAINER_ENGINE_FAILED' | 'CONTAINER_NAME_TAKEN' | 'CONTAINER_VANISHED' | 'CONTAINER_WORK_DIR';

/**
 * Every error altplat raises on purpose is an AltplatError with a stable, machine-readable `code`
 * (a reason code such as `DEF_NOT_WELL_FORMED` or `REPLY_BAD_FILENAME`) and a message written for a
 * volunteer. Callers branch on `code`, never on the message text.
 */
export class AltplatError<C extends AltplatErrorCode = AltplatErrorCode> extends Error {
  readonly code: C;
  readonly details?: Record<string, unknown>;

  constructor(code: C, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AltplatError';
    this.code = code;
    this.details = details;
  }
}

/** Narrow `e` to an AltplatError (with that code, when given: an unknown code does not compile). */
export function isAltplatError<C extends AltplatErrorCode = AltplatErrorCode>(e: unknown, code?: C): e is AltplatError<C> {
  return e instanceof AltplatError && (code === undefined || e.code === code);
}

/**
 * The CLI's exit status for an error that ends a command: 2 for what the volunteer named wrongly (the
 * data dir), 1 for everything else (the work failed). One table, used by src/cli/main.ts.
 */
const USAGE_CODES: ReadonlySet<AltplatErrorCode> = new Set<AltplatErrorCode>([
  'DATA_DIR_MISSING', 'DATA_DIR_NOT_A_FOLDER', 'DATA_DIR_UNREADABLE', 'BAD_PLATFORM_NAME', 'VERIFY_NOT_FOUND', 'INSTALL_SOURCE',
]);
export function cliExitStatus(code: AltplatErrorCode): 1 | 2 {
  return USAGE_CODES.has(code) ? 2 : 1;
}

/** Node's errno code of a failed system call (ENOENT, EEXIST, ...), or undefined. */
export function errnoCode(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof (e as { code: unknown }).code === 'string'
    ? (e as { code: string }).code
    : undefined;
}
