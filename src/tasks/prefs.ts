import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import { childText, parseXml, type XmlNode } from '../util/xml.js';

/** lib/prefs.cpp GLOBAL_PREFS::defaults(): disk_interval = 60 ("at most every 60 s"). */
export const DEFAULT_DISK_INTERVAL = 60;

/**
 * The checkpoint period the client hands apps in init_data.xml: the volunteer's `disk_interval`
 * preference (client/app_start.cpp sets checkpoint_period from global_prefs.disk_interval). As in the
 * BOINC client, `global_prefs_override.xml` (local settings) wins over the project-sent
 * `global_prefs.xml`; a missing, unreadable or nonsensical value falls back to the default.
 */
export async function readCheckpointPeriod(dataDir: string): Promise<number> {
  for (const file of ['global_prefs_override.xml', 'global_prefs.xml']) {
    const value = await diskIntervalIn(path.join(dataDir, file));
    if (value !== undefined) return value;
  }
  return DEFAULT_DISK_INTERVAL;
}

async function diskIntervalIn(file: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
  try {
    const doc = parseXml(text, { what: path.basename(file), codePrefix: 'PREFS', maxBytes: 1 << 20 });
    // Top-level values only: venue-specific blocks (<venue name="work">) are not selected here.
    const root = doc.global_preferences as XmlNode | undefined;
    const raw = childText(root, 'disk_interval');
    const n = raw === undefined ? NaN : Number(raw);
    return Number.isFinite(n) && n >= 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
