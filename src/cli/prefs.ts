import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { childText, parseXml, type XmlNode } from '../util/xml.js';
import { STATE_DIR } from '../paths.js';
import type { VolunteerPrefs } from '../tasks/context.js';

/** lib/prefs.cpp GLOBAL_PREFS::defaults(): disk_interval = 60 ("at most every 60 s"), leave_apps_in_memory 0. */
export const DEFAULT_DISK_INTERVAL = 60;

/**
 * `<data>/altplat/global_prefs.xml`: the last scheduler reply's `<global_preferences>`, saved by the CLI
 * (client/cs_scheduler.cpp save_global_prefs) — not the data dir's own global_prefs.xml, which a real
 * BOINC client may own.
 */
export const SAVED_PREFS_FILE = 'global_prefs.xml';

/**
 * The volunteer's preferences for `altplat run`, field by field in BOINC's order (the client reads the
 * project's global_prefs.xml, then global_prefs_override.xml — the local settings — on top): the
 * override file, then the preferences altplat saved from the last reply, then the data dir's
 * global_prefs.xml, then BOINC's defaults. A missing, unreadable or nonsensical value is skipped.
 */
export async function readVolunteerPrefs(dataDir: string): Promise<VolunteerPrefs> {
  const sources = [
    path.join(dataDir, 'global_prefs_override.xml'),
    path.join(dataDir, STATE_DIR, SAVED_PREFS_FILE),
    path.join(dataDir, 'global_prefs.xml'),
  ];
  const docs = await Promise.all(sources.map(prefsIn));
  const pick = <T>(get: (root: XmlNode) => T | undefined, dflt: T): T => {
    for (const d of docs) {
      const v = d ? get(d) : undefined;
      if (v !== undefined) return v;
    }
    return dflt;
  };
  return {
    diskInterval: pick((r) => nonNegative(childText(r, 'disk_interval')), DEFAULT_DISK_INTERVAL),
    leaveAppsInMemory: pick((r) => bool(childText(r, 'leave_apps_in_memory')), false),
  };
}

/** The checkpoint period handed to apps in init_data.xml (client/app_start.cpp: global_prefs.disk_interval). */
export async function readCheckpointPeriod(dataDir: string): Promise<number> {
  return (await readVolunteerPrefs(dataDir)).diskInterval;
}

/** Save a reply's `<global_preferences>` under `<data>/altplat/` (atomically). */
export async function saveReplyPrefs(dataDir: string, xml: string): Promise<void> {
  await fsp.mkdir(path.join(dataDir, STATE_DIR), { recursive: true });
  await writeFileAtomic(path.join(dataDir, STATE_DIR, SAVED_PREFS_FILE), `${xml}\n`);
}

function nonNegative(raw: string | undefined): number | undefined {
  const n = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** lib/parse.cpp parse_bool: `<x/>` or a number; 0 is false. */
function bool(raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw.trim() === '') return true;
  const n = Number.parseInt(raw, 10);
  return Number.isNaN(n) ? undefined : n !== 0;
}

async function prefsIn(file: string): Promise<XmlNode | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
  try {
    const doc = parseXml(text, { what: path.basename(file), codePrefix: 'PREFS', maxBytes: 1 << 20 });
    // Top-level values only: venue-specific blocks (<venue name="work">) are not selected here.
    const root = doc.global_preferences as XmlNode | undefined;
    return root && typeof root === 'object' ? root : undefined;
  } catch {
    return undefined;
  }
}
