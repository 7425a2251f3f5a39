/**
 * altplat's public API for embedding in a TypeScript BOINC client. One module per concern; every error
 * is an AltplatError with a reason `code`.
 */
export { AltplatError, isAltplatError } from './errors.js';
export { resolveDataDir, defaultDataDir, escapeProjectUrl, dataPaths } from './paths.js';
export type { PlatformDefinition, PlatformFile, PlatformRequirements, HypervisorRequirement } from './definition/types.js';
// discovery (issue 2): definitions, host probes, discovery, install/verify, scheduler request patching
export * from './discovery/index.js';
export { ProcessState } from './ipc/contract.js';
export type { AppStatus, ClientControl, ControlAction, ControlMessage } from './ipc/contract.js';
// ipc (issue 4): BOINC's client<->app channel over boinc_mmap_file, both sides
export { openClientControl, QUIT_TIMEOUT_MS, ABORT_TIMEOUT_MS, CONTROL_STUCK_MS } from './ipc/client.js';
export type { ClientControlOptions } from './ipc/client.js';
export { createMmapFile, MmapChannels, Channel, MMAP_FILE_NAME, SHARED_MEM_SIZE, MSG_CHANNEL_SIZE } from './ipc/mmap.js';
export { writeInitData, readInitData, serializeInitData, parseInitData, INIT_DATA_FILE } from './ipc/init-data.js';
export type { InitData, FullInitData, HostInfoData } from './ipc/init-data.js';
export { BoincApp, EXIT_ABORTED_BY_CLIENT, BOINC_FINISH_CALLED_FILE, TEMPORARY_EXIT_FILE } from './ipc/app.js';
export type { BoincAppOptions, AppEvent } from './ipc/app.js';
export { resolveFilename } from './ipc/resolve.js';
export { formatE, formatF } from './ipc/cformat.js';
export { JOB_FILE, parseJob, readJobFile, writeJobFile, serializeJob } from './job/jobfile.js';
export type { JobDescription, JobFileRef, JobOutputRef } from './job/jobfile.js';
// lifecycle (issue 3): scheduler reply → slot → working copy → manager → exit rules → outputs → cleanup
export { TaskLifecycle, TASK_POLL_MS } from './tasks/runner.js';
export type { LifecycleOptions, RunInput, RunResult, ProgressEvent, PlatformsView } from './tasks/runner.js';
export type { ResultReport, Outcome } from './tasks/report.js';
export { parseSchedulerReply, readSchedulerReply, badFileName } from './scheduler/reply.js';
export type {
  ParsedReply, Assignment, Rejection, ReplyFileInfo, ReplyFileRef, ReplyApp, ReplyAppVersion, ReplyWorkunit, ReplyResult, RunKind,
} from './scheduler/reply-types.js';
export type { ReplyPlatforms } from './scheduler/reply.js';
export { decideExit, parseTemporaryExitFile, parseFinishFile, ERR_TOO_MANY_EXITS, EXIT_ABORTED_VIA_GUI } from './tasks/exit-rules.js';
export type { ExitFacts, ExitDecision, TemporaryExit } from './tasks/exit-rules.js';
export { sendTaskCommand, CONTROL_SOCKET } from './tasks/control-socket.js';
export type { TaskOp, TaskRequest, TaskResponse } from './tasks/control-socket.js';
export { Journal, JOURNAL_FILE } from './tasks/journal.js';
export type { TaskRecord, TaskStep } from './tasks/journal.js';
export type { Spawner } from './tasks/launch.js';
export { setupSlot, softLinkText, checkInputs } from './slots/setup.js';
export { createWorkingCopy, changedSharedOriginals, removeWorkingCopy } from './slots/working-copy.js';
export type { WorkingCopy, SharedFileStamp, ShareMethod } from './slots/working-copy.js';
export { stageFiles, verifyProjectFile } from './slots/files.js';
export { ERR_FILE_TOO_BIG, STDERR_TAIL_BYTES } from './slots/outputs.js';
// qemu (issue 5): the reference platform's QMP and guest-agent clients, QEMU driver and manager
export { QmpClient } from './manager/qmp.js';
export type { QmpEvent, QmpOptions } from './manager/qmp.js';
export { QgaClient, QGA_CHUNK_BYTES } from './manager/qga.js';
export type { GuestExecStatus, GuestExecOptions } from './manager/qga.js';
export { QemuVm, startVm, createOverlay, listSnapshots, killOrphanVm, qemuArgs, PIDFILE as QEMU_PIDFILE } from './manager/qemu.js';
export type { StartOptions as QemuStartOptions, ExitInfo as QemuExitInfo, PidfileContent as QemuPidfileContent } from './manager/qemu.js';
export { kvmPrecheck } from './manager/accel.js';
export type { KvmPrecheck, KvmVerdict } from './manager/accel.js';
export { loadVmConfig, parseVmConfig } from './manager/vm-config.js';
export type { VmConfig, AccelChoice } from './manager/vm-config.js';
export { Manager, parseManagerArgs } from './manager/manager.js';
export type { ManagerOptions } from './manager/manager.js';
export { STATE_FILE as MANAGER_STATE_FILE, TASK_OVERLAY } from './manager/state.js';
export type { ManagerState } from './manager/state.js';
export type { ManagerDefinition } from './definition/types.js';
export {
  DEFAULT_CPU_MODEL, DEFAULT_MACHINE_TYPE, GLIBC_BASELINE_TUNABLES, NEHALEM_GLIBC_HWCAPS, NEHALEM_LIBRARY_ENV,
  baselineEnvFor, cpuModelProblem, glibcTunablesFor, machineTypeProblem,
} from './definition/cpu-baseline.js';
