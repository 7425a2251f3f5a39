/**
 * `altplat/qemu` — the reference platform's manager pieces: QMP and guest-agent clients, the QEMU
 * driver, vm_config.xml, the KVM pre-check and the manager itself (docs/REFERENCE_PLATFORM.md).
 */
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
