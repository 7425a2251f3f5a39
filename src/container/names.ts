import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Labels every altplat container carries; the sweep and the cleanup verb select by them. */
export const LABEL_DATA_DIR = 'altplat.data_dir';
export const LABEL_SLOT = 'altplat.slot';
export const LABEL_RESULT = 'altplat.result';
export const LABEL_PLATFORM = 'altplat.platform';

function safe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '');
}

/** The real path of a folder (the labels compare them), or the path itself when it is gone. */
export function realDir(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch {
    return path.resolve(p);
  }
}

/** The data dir of a slot `<data>/slots/N`. */
export function dataDirOfSlot(slotDir: string): string {
  return path.dirname(path.dirname(realDir(slotDir)));
}

/**
 * The container's name: docker_wrapper's `boinc__<project>__<result>` (samples/docker_wrapper), plus
 * 8 hex digits of the data dir, because one host may run several clients (or test runs) that hold the
 * same project and result names; the engine's namespace is host-wide.
 */
export function containerName(projectDir: string, resultName: string, dataDir: string): string {
  const dd = createHash('sha256').update(realDir(dataDir)).digest('hex').slice(0, 8);
  return `boinc__${safe(path.basename(projectDir)) || 'project'}__${safe(resultName) || 'result'}__${dd}`;
}
