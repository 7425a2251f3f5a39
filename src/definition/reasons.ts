/**
 * Every reason code discovery can give, with what it means. `invalid` codes say the platform folder is
 * broken; `unsupported` codes say a requirement does not hold on this host. docs/PLATFORM_FORMAT.md lists
 * them for volunteers; fixtures/platforms has a folder for each one.
 */
export const INVALID_CODES = {
  DEF_MISSING: 'the folder has no alt_platform.xml',
  DEF_UNREADABLE: 'alt_platform.xml is not a readable regular file',
  DEF_TOO_LARGE: 'alt_platform.xml is over 1 MiB and is refused before parsing',
  DEF_DOCTYPE: 'alt_platform.xml contains a DOCTYPE or ENTITY declaration (never processed)',
  DEF_NOT_WELL_FORMED: 'alt_platform.xml is not well-formed XML',
  DEF_MISSING_ELEMENT: 'a required element is missing (or the root is not <alt_platform>)',
  DEF_DUPLICATE_ELEMENT: 'an element that may appear once appears twice, or a file is listed twice',
  DEF_BAD_VALUE: 'an element has a value of the wrong form (number, sha256, path, text)',
  DEF_BAD_NAME: 'the platform name has characters other than A-Z a-z 0-9 . _ - or is too long',
  DEF_NAME_MISMATCH: 'the platform name differs from its folder name',
  DEF_BAD_VERSION: '<version> is not a semantic version',
  DEF_BAD_RANGE: 'a hypervisor <version> is not a semver range',
  DEF_BAD_CPU_MODEL: '<manager/cpu_model> is empty, has characters QEMU would read as options (`,` `=`), or is not one fixed CPU (host, max)',
  DEF_BAD_MACHINE_TYPE: '<manager/machine_type> is empty or has characters QEMU would read as options (`,` `=`)',
  PATH_ABSOLUTE: 'a path is absolute',
  PATH_PARENT: 'a path contains `..`',
  PATH_ESCAPES: 'a path leads outside the platform folder through a symbolic link',
  MANAGER_MISSING: 'the manager file does not exist',
  MANAGER_NOT_REGULAR: 'the manager is not a regular file',
  MANAGER_NOT_EXECUTABLE: 'the manager is not executable',
  FILE_MISSING: 'a listed file does not exist',
  FILE_NOT_REGULAR: 'a listed file is not a regular file',
  FILE_UNREADABLE: 'a listed file could not be read to check its sha256',
  FILE_SIZE_MISMATCH: 'a listed file has another size than <nbytes>',
  FILE_SHA256_MISMATCH: 'a listed file has another sha256 than <sha256>',
} as const;

export const UNSUPPORTED_CODES = {
  REQ_HYPERVISOR_MISSING: 'none of the hypervisors the platform accepts was found',
  REQ_HYPERVISOR_VERSION: 'a hypervisor was found but not in a version the platform accepts',
  REQ_ARCH: 'the host architecture is not one the platform accepts',
  REQ_HW_ACCEL: 'hardware virtualization is required but not usable',
  REQ_RAM: 'the host has less RAM than the platform needs',
} as const;

export type InvalidCode = keyof typeof INVALID_CODES;
export type UnsupportedCode = keyof typeof UNSUPPORTED_CODES;
export type ReasonCode = InvalidCode | UnsupportedCode;

export function isUnsupportedCode(code: string): code is UnsupportedCode {
  return Object.prototype.hasOwnProperty.call(UNSUPPORTED_CODES, code);
}
