/**
 * altplat's public API for embedding in a TypeScript BOINC client. One module per concern; every error
 * is an AltplatError with a reason `code`.
 */
export { AltplatError, isAltplatError } from './errors.js';
export { resolveDataDir, defaultDataDir, escapeProjectUrl, dataPaths } from './paths.js';
export type { PlatformDefinition, PlatformFile, PlatformRequirements, HypervisorRequirement } from './definition/types.js';
export { ProcessState } from './ipc/contract.js';
export type { AppStatus, ClientControl, ControlAction, ControlMessage } from './ipc/contract.js';
export { JOB_FILE, parseJob, readJobFile, writeJobFile, serializeJob } from './job/jobfile.js';
export type { JobDescription, JobFileRef, JobOutputRef } from './job/jobfile.js';
