/**
 * `altplat` — the client API: altplat as the per-task part of a TypeScript BOINC client
 * (docs/EMBEDDING.md). The app side is `altplat/app`; the reference QEMU manager's pieces are
 * `altplat/qemu`.
 */
export { AltplatClient, TASK_POLL_MS, CLIENT_LOCK_FILE } from './tasks/client.js';
export type { AltplatClientOptions, AcceptOptions, AcceptResult, BoincPrefNames } from './tasks/client.js';
export { AltTask } from './tasks/active-task.js';
export type { SuspendOptions } from './tasks/active-task.js';
export type { ReplyInput } from './tasks/intake.js';
export type { VolunteerPrefs } from './tasks/context.js';
export { DefaultSlotAllocator, SLOT_MARKS_DIR } from './tasks/slot-allocator.js';
export type { SlotAllocator } from './tasks/slot-allocator.js';
export { defaultSystem, defaultAppEnv } from './tasks/system.js';
export type { AltplatSystem, ProcessInfo, Spawner, LogLevel } from './tasks/system.js';
export type {
  AltplatEvents, AltplatEventName, TaskState, StateEvent, ProgressEvent, ExitEvent, TrickleUpEvent, ReportEvent,
} from './tasks/events.js';
export type { ResultReport, Outcome } from './tasks/report.js';
export type { TaskStep } from './tasks/journal.js';
export type { ExitDecision } from './tasks/exit-rules.js';
export { runBatch } from './tasks/batch.js';
export type { BatchInput, RunResult } from './tasks/batch.js';
export { canonicalizeMasterUrl, sameProject, projectFolderName } from './tasks/project.js';
export { AltplatError, isAltplatError, cliExitStatus } from './errors.js';
export type { AltplatErrorCode } from './errors.js';
export { ProcessState } from './ipc/contract.js';
export {
  EXIT_ABORTED_BY_CLIENT, EXIT_DISK_LIMIT_EXCEEDED, EXIT_TIME_LIMIT_EXCEEDED, EXIT_ABORTED_BY_PROJECT, EXIT_ABORTED_VIA_GUI,
  EXIT_UNKNOWN, ERR_FILE_TOO_BIG, ERR_NOT_FOUND, ERR_RESULT_START, ERR_RESULT_DOWNLOAD, ERR_TOO_MANY_EXITS,
} from './boinc.js';
// Discovery, install and verify: what `altplat list/install/verify` are built on.
export { discoverPlatforms, discoveryToJson } from './discovery/discover.js';
export type { DiscoverOptions, DiscoveredPlatform, DiscoveryResult, PlatformStatus } from './discovery/discover.js';
export { installPlatform } from './discovery/install.js';
export type { InstallOptions, InstallResult } from './discovery/install.js';
export { verifyPlatforms } from './discovery/verify.js';
export type { VerifyOptions, VerifyResult, VerifiedPlatform, Verdict } from './discovery/verify.js';
export { patchSchedulerRequest, readRequestPlatforms } from './scheduler/request.js';
export type { PatchResult, RequestPlatforms } from './scheduler/request.js';
export type { HostProbes, HostInfo } from './host/probes.js';
export type { PlatformDefinition, ManagerDefinition, PlatformFile, PlatformRequirements, HypervisorRequirement, Reason } from './definition/types.js';
export { parseSchedulerReply } from './scheduler/reply.js';
export type { ReplyPlatforms } from './scheduler/reply.js';
export type { ParsedReply, Assignment, Rejection } from './scheduler/reply-types.js';
// The platform's fixed virtual CPU (issue 12): defaults and checks a client or manager can share.
export {
  DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE, GLIBC_BASELINE_TUNABLES, NEHALEM_GLIBC_HWCAPS, NEHALEM_LIBRARY_ENV,
  baselineEnvFor, cpuModelProblem, glibcTunablesFor, machineTypeProblem,
} from './definition/cpu-baseline.js';
