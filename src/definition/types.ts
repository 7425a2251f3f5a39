/** A parsed, validated `alt_platforms/<name>/alt_platform.xml` (format: docs/PLATFORM_FORMAT.md). */
export type HypervisorName = 'qemu' | 'virtualbox' | 'vmware' | 'docker' | 'podman';

export interface HypervisorRequirement {
  name: HypervisorName;
  /** semver range text as written (absent = any version). */
  versionRange?: string;
}

export interface PlatformRequirements {
  /** Any one of these satisfies the hypervisor requirement; empty = none needed. */
  hypervisors: HypervisorRequirement[];
  /** Host arch must be one of these (Node's `process.arch` names and BOINC spellings, normalised); empty = any. */
  arch: string[];
  hwAccel: boolean;
  minRamMb?: number;
}

export interface PlatformFile {
  /** Path inside the platform folder, '/'-separated, validated to stay inside it. */
  name: string;
  nbytes?: number;
  sha256?: string;
  /** Read-only and shared by every slot: never copied into a working copy. */
  shared: boolean;
}

export interface PlatformDefinition {
  name: string;
  userFriendlyName?: string;
  version: string;
  manager: { fileName: string; cmdline: string };
  requires: PlatformRequirements;
  files: PlatformFile[];
  /** Absolute path of the platform folder the definition was read from. */
  dir: string;
  /** Unknown elements that were ignored (forward compatibility), for warnings. */
  ignoredElements: string[];
}
