/**
 * `altplat/app` — what a manager or a research app written in TypeScript needs: the app side of BOINC's
 * shared-memory channel (BoincApp), boinc_resolve_filename, init_data.xml and the manager's job file.
 */
export { BoincApp, TIMER_PERIOD_MS, HEARTBEAT_GIVEUP_SECS } from './ipc/app.js';
export type { BoincAppOptions, AppEvent } from './ipc/app.js';
export { resolveFilename } from './ipc/resolve.js';
export { readInitData, parseInitData, INIT_DATA_FILE } from './ipc/init-data.js';
export type { InitData, FullInitData, HostInfoData } from './ipc/init-data.js';
export { JOB_FILE, parseJob, readJobFile } from './job/jobfile.js';
export type { JobDescription, JobFileRef, JobOutputRef } from './job/jobfile.js';
export { ProcessState } from './ipc/contract.js';
export { AltplatError, isAltplatError } from './errors.js';
export type { AltplatErrorCode } from './errors.js';
export {
  EXIT_ABORTED_BY_CLIENT, FINISH_FILE, TEMPORARY_EXIT_FILE, MMAP_FILE_NAME, STDERR_FILE,
} from './boinc.js';
