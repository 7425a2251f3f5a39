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

/** One backend of a platform: a `<manager>` element (SHARED-SHAPES.md; several may be listed: docs/PLATFORM_FORMAT.md). */
export interface ManagerDefinition {
  /** The backend's `<name>`; absent = derived (backendNames: its required hypervisor, else `default`). */
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
  /** Run by the client as `<manager> <cleanup_cmdline>` (cwd = the slot) after it killed the manager's group, and at recovery. */
  cleanupCmdline?: string;
  /** This backend's own requirements, in addition to the definition's top-level <requires>. */
  requires?: PlatformRequirements;
}

export interface PlatformDefinition {
  name: string;
  userFriendlyName?: string;
  version: string;
  /**
   * The manager that runs: the first of `managers` until discovery chooses the backend for this host
   * (src/discovery/backend.ts), then the chosen one.
   */
  manager: ManagerDefinition;
  /**
   * Every backend, in file order (a single-manager definition has one). parseDefinition always fills it;
   * optional so that a definition built by hand with only `manager` stays valid (it is then the one backend).
   */
  managers?: ManagerDefinition[];
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
