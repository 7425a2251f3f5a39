/** A parsed, validated `alt_platforms/<name>/alt_platform.xml` (format: docs/PLATFORM_FORMAT.md). */
export type HypervisorName = 'qemu' | 'virtualbox' | 'vmware' | 'docker' | 'podman';

export const HYPERVISOR_NAMES: readonly HypervisorName[] = ['qemu', 'virtualbox', 'vmware', 'docker', 'podman'];

export interface HypervisorRequirement {
  /**
   * One of HypervisorName; a name altplat does not know is kept (forward compatibility) and never
   * satisfied, so a newer definition that also lists a known hypervisor still works.
   */
  name: HypervisorName | (string & {});
  /** semver range text as written (absent or empty = any version). */
  versionRange?: string;
}

export interface PlatformRequirements {
  /** Any one of these satisfies the hypervisor requirement; empty = none needed. */
  hypervisors: HypervisorRequirement[];
  /** Host arch must be one of these (as written; compared after normaliseArch); empty = any. */
  arch: string[];
  hwAccel: boolean;
  minRamMb?: number;
}

export interface PlatformFile {
  /** Path inside the platform folder, '/'-separated, validated to stay inside it. */
  name: string;
  nbytes?: number;
  /** Lower-case hex. */
  sha256?: string;
  /** Read-only and shared by every slot: never copied into a working copy. */
  shared: boolean;
}

/** The platform's manager (SHARED-SHAPES.md: per-backend fields inside `<manager>`). */
export interface ManagerDefinition {
  /** Backend name (i11); the journal records `name ?? fileName` so a relaunch uses the same backend. */
  name?: string;
  /** The manager's path inside the folder ('/'-separated, normalised). */
  fileName: string;
  cmdline: string;
  /**
   * The platform's virtual CPU (`<cpu_model>`, e.g. Nehalem-v1): given to QEMU's `-cpu` under KVM and TCG
   * alike, so every host shows a program the same CPUID (docs/HOMOGENEITY.md). Absent = the manager's default.
   */
  cpuModel?: string;
  /** Pinned machine type (`<machine_type>`, e.g. pc-q35-7.2, not the moving `q35` alias). */
  machineType?: string;
  /** Opt-in: the client runs `<manager> <cleanupCmdline>` (cwd = slot) after it kills the manager's group and at recovery. */
  cleanupCmdline?: string;
}

export interface PlatformDefinition {
  name: string;
  userFriendlyName?: string;
  version: string;
  manager: ManagerDefinition;
  requires: PlatformRequirements;
  files: PlatformFile[];
  /** Absolute path of the platform folder the definition was read from. */
  dir: string;
  /** Unknown elements that were ignored (forward compatibility), for warnings, as paths like `requires/gpu`. */
  ignoredElements: string[];
}

/** Why a platform is not advertised: a stable machine-readable code and a message for a volunteer. */
export interface Reason {
  code: string;
  message: string;
}
