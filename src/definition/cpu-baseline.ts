/**
 * The platform's virtual CPU (docs/HOMOGENEITY.md). A platform names one CPU model and one machine type in
 * its definition (`<manager><cpu_model>`, `<machine_type>`); the QEMU manager gives them to `-cpu` and
 * `-M` under KVM and TCG alike, so a program sees the same CPUID — and glibc picks the same libm variants —
 * on every volunteer host. Backends that cannot hide the host CPU (containers) hold glibc to the same
 * baseline with `GLIBC_TUNABLES` instead: see glibcTunablesFor.
 */

/**
 * The default model of x86-64 platforms: Nehalem, versioned so that no machine type remaps it. It has
 * SSE4.2 and POPCNT (x86-64-v2) and none of AVX, AVX2, FMA, FMA4, F16C, BMI1/2, AVX-512, so every x86-64
 * host KVM runs on can provide it and glibc's FMA/AVX2 libm variants are never chosen.
 */
export const DEFAULT_CPU_MODEL = 'Nehalem-v1';
/** The default machine type: q35 pinned to QEMU 7.2's version of it (the `q35` alias moves with QEMU). */
export const DEFAULT_MACHINE_TYPE = 'pc-q35-7.2';

/**
 * QEMU reads `-cpu` and `-M` as `name,opt=val,...`: a ',' or '=' in the name would smuggle options in
 * (and `,enforce` could be undone), whitespace or a leading '-' would not survive a command line. Model and
 * machine names are letters, digits and `._-` (e.g. `Nehalem-v1`, `EPYC-Rome-v2`, `pc-q35-7.2`).
 */
const QEMU_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Models that are not one fixed CPU: `host` passes the volunteer's processor through and `max` is
 * whatever the accelerator can offer — both differ from host to host, which is what the model removes.
 */
const NOT_FIXED = new Set(['host', 'max', 'help']);

/** Why `model` cannot be a platform's CPU model, or undefined when it can. */
export function cpuModelProblem(model: string): string | undefined {
  if (!QEMU_NAME.test(model)) {
    return `CPU model "${model}" must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit (QEMU would read "," or "=" as options)`;
  }
  if (NOT_FIXED.has(model.toLowerCase())) {
    return `CPU model "${model}" is not one fixed CPU (it follows the host or the accelerator); name a versioned model such as ${DEFAULT_CPU_MODEL}`;
  }
  return undefined;
}

/** Why `machine` cannot be a platform's machine type, or undefined when it can. */
export function machineTypeProblem(machine: string): string | undefined {
  if (!QEMU_NAME.test(machine) || machine.toLowerCase() === 'help' || machine.toLowerCase() === 'none') {
    return `machine type "${machine}" must be 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit, such as ${DEFAULT_MACHINE_TYPE} (QEMU would read "," or "=" as options)`;
  }
  return undefined;
}

/**
 * glibc ≥ 2.33 names (sysdeps/x86/cpu-tunables.c) of the features a Nehalem lacks that glibc's dispatch
 * looks at: AVX/AVX2/FMA/FMA4 pick libm's variants (sysdeps/x86_64/fpu/multiarch/ifunc-fma*.h), AVX-512,
 * AVX2, BMI1/2, LZCNT, MOVBE pick string functions and the x86-64-v3/v4 glibc-hwcaps library folders.
 * Disabling one never cascades to another in glibc, so each is named.
 */
export const NEHALEM_GLIBC_HWCAPS = [
  'AVX', 'AVX2', 'FMA', 'FMA4',
  'AVX512F', 'AVX512CD', 'AVX512BW', 'AVX512DQ', 'AVX512ER', 'AVX512PF', 'AVX512VL',
  'BMI1', 'BMI2', 'LZCNT', 'MOVBE',
] as const;

/**
 * glibc 2.26–2.32 chose libm's variants from "usable" bits with their own names, which a static binary
 * linked against those versions reads (its tunables parser is the one inside it); the plain names above
 * only cleared the CPUID copy there. 2.26–2.28 also spelled the tunable `glibc.tune.hwcaps`.
 */
export const LEGACY_GLIBC_HWCAPS = ['AVX_Usable', 'AVX2_Usable', 'FMA_Usable', 'FMA4_Usable', 'AVX512F_Usable', 'AVX512DQ_Usable'] as const;

const off = (names: readonly string[]) => names.map((n) => `-${n}`).join(',');

/**
 * The `GLIBC_TUNABLES` value that holds glibc to the Nehalem-v1 baseline on a host with a newer CPU:
 * `glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4,-AVX512F,…` for glibc ≥ 2.33 (dynamic programs use the
 * host's or image's glibc, static ones their own), the `_Usable` names for static programs from glibc
 * 2.29–2.32, and `glibc.tune.hwcaps` for 2.26–2.28. glibc ignores names it does not know, so one value
 * serves all. Setuid programs ignore it (not a concern for BOINC apps).
 */
export const GLIBC_BASELINE_TUNABLES =
  `glibc.cpu.hwcaps=${off([...NEHALEM_GLIBC_HWCAPS, ...LEGACY_GLIBC_HWCAPS])}:glibc.tune.hwcaps=${off(LEGACY_GLIBC_HWCAPS)}`;

/** Baselines altplat knows how to hold glibc to, by CPU model. */
const GLIBC_TUNABLES_BY_MODEL: Record<string, string> = {
  [DEFAULT_CPU_MODEL]: GLIBC_BASELINE_TUNABLES,
};

/**
 * The `GLIBC_TUNABLES` value for a platform's CPU model (undefined for a model altplat has no mask for),
 * joined with tunables already set (`existing`, e.g. the task's own GLIBC_TUNABLES) so neither is lost.
 *
 * @example
 * env.GLIBC_TUNABLES = glibcTunablesFor(def.manager.cpuModel ?? DEFAULT_CPU_MODEL, process.env.GLIBC_TUNABLES);
 */
export function glibcTunablesFor(cpuModel: string, existing?: string): string | undefined {
  const t = GLIBC_TUNABLES_BY_MODEL[cpuModel];
  if (t === undefined) return undefined;
  return existing ? `${existing}:${t}` : t;
}

/**
 * Libraries that read CPUID themselves, capped at the Nehalem level: values that make them take in a
 * container the path they take on a Nehalem CPU (in the VM they are no-ops). OpenBLAS (DYNAMIC_ARCH builds)
 * picks its kernels by core type; Intel MKL caps its dispatch with MKL_ENABLE_INSTRUCTIONS. FFTW has no such
 * switch (docs/HOMOGENEITY.md).
 */
export const NEHALEM_LIBRARY_ENV: Readonly<Record<string, string>> = {
  OPENBLAS_CORETYPE: 'NEHALEM',
  MKL_ENABLE_INSTRUCTIONS: 'SSE4_2',
};

/**
 * The environment a backend that runs on the host CPU (containers) gives a task of a platform with this CPU
 * model, so that glibc and the libraries above dispatch as on the model: GLIBC_TUNABLES (joined with
 * `existingTunables`) and NEHALEM_LIBRARY_ENV. Undefined for a model altplat has no mask for.
 */
export function baselineEnvFor(cpuModel: string, existingTunables?: string): Record<string, string> | undefined {
  const tunables = glibcTunablesFor(cpuModel, existingTunables);
  if (tunables === undefined) return undefined;
  return { GLIBC_TUNABLES: tunables, ...NEHALEM_LIBRARY_ENV };
}
