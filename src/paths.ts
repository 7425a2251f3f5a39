import * as path from 'node:path';
import { realDataRoot } from './util/owned-dir.js';

/**
 * The BOINC data dir layout altplat reads and writes. altplat owns four places below the data dir —
 * `slots/`, `alt_platforms_working/`, the project dirs under `projects/` and its state folder `altplat/` —
 * and writes there only while each is a real folder (src/util/owned-dir.ts); it reads `alt_platforms/`
 * and never writes it except through `altplat install`.
 */
export const ALT_PLATFORMS_DIR = 'alt_platforms';
export const ALT_PLATFORMS_WORKING_DIR = 'alt_platforms_working';
export const SLOTS_DIR = 'slots'; // client/file_names.cpp SLOTS_DIR
export const PROJECTS_DIR = 'projects';
export const DEFINITION_FILE = 'alt_platform.xml';
/** Folder in the data dir for altplat's own state (journal, hash cache, control socket). */
export const STATE_DIR = 'altplat';

/** BOINC's default data dir of the OS the code runs on. */
export function defaultDataDir(platform: NodeJS.Platform = process.platform): string {
  switch (platform) {
    case 'win32':
      return 'C:\\ProgramData\\BOINC';
    case 'darwin':
      return '/Library/Application Support/BOINC Data';
    default:
      return '/var/lib/boinc-client';
  }
}

/** `--data-dir`, else `BOINC_DATA_DIR`, else the OS default; always absolute. */
export function resolveDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  const chosen = flag ?? (env.BOINC_DATA_DIR && env.BOINC_DATA_DIR !== '' ? env.BOINC_DATA_DIR : defaultDataDir());
  return path.resolve(chosen);
}

/**
 * BOINC's readable escaping of a project master URL, used for project dir and sched_request file names
 * (lib/url.cpp escape_url_readable): drop up to and including `://`, map every character that is not
 * alphanumeric, `.`, `-` or `_` to `_`, then drop one trailing `_`.
 */
export function escapeProjectUrl(masterUrl: string): string {
  const i = masterUrl.indexOf('://');
  const rest = i >= 0 ? masterUrl.slice(i + 3) : masterUrl;
  // BOINC works on bytes (C isalnum in the C locale): each byte of a non-ASCII UTF-8 character is one '_'.
  let out = rest.replace(/[^A-Za-z0-9.\-_]/gu, (c) => '_'.repeat(Buffer.byteLength(c, 'utf8')));
  if (out.endsWith('_')) out = out.slice(0, -1);
  return out;
}

/**
 * Every path altplat uses in a data dir, built from the data dir resolved once (realpath): the data dir
 * may itself be a link (Debian's /var/lib/boinc), and the owned-folder checks of src/util/owned-dir.ts
 * walk down from a root that is real.
 */
export function dataPaths(dataDir: string) {
  const root = realDataRoot(dataDir);
  return {
    root,
    altPlatforms: path.join(root, ALT_PLATFORMS_DIR),
    altPlatformsWorking: path.join(root, ALT_PLATFORMS_WORKING_DIR),
    slots: path.join(root, SLOTS_DIR),
    projects: path.join(root, PROJECTS_DIR),
    state: path.join(root, STATE_DIR),
    platformDir: (name: string) => path.join(root, ALT_PLATFORMS_DIR, name),
    slotDir: (n: number) => path.join(root, SLOTS_DIR, String(n)),
    workingCopy: (n: number) => path.join(root, ALT_PLATFORMS_WORKING_DIR, `slot${n}`),
    projectDir: (masterUrl: string) => path.join(root, PROJECTS_DIR, escapeProjectUrl(masterUrl)),
  };
}
export type DataPaths = ReturnType<typeof dataPaths>;
