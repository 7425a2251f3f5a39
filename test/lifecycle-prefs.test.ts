import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_DISK_INTERVAL, readCheckpointPeriod } from '../src/cli/prefs.js';

describe('checkpoint period from the volunteer preferences (disk_interval)', () => {
  let dir: string;
  beforeEach(async () => { dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-prefs-')); });
  afterEach(async () => { await fsp.rm(dir, { recursive: true, force: true }); });

  const prefs = (v: string, extra = '') =>
    `<global_preferences>\n   <mod_time>1700000000</mod_time>\n${extra}   <disk_interval>${v}</disk_interval>\n</global_preferences>\n`;

  it('is BOINC\'s default of 60 s without preference files', async () => {
    expect(DEFAULT_DISK_INTERVAL).toBe(60);
    expect(await readCheckpointPeriod(dir)).toBe(60);
  });

  it('reads global_prefs.xml, and global_prefs_override.xml wins over it', async () => {
    await fsp.writeFile(path.join(dir, 'global_prefs.xml'), prefs('120.000000',
      '   <venue name="work">\n      <disk_interval>7</disk_interval>\n   </venue>\n'));
    expect(await readCheckpointPeriod(dir)).toBe(120);
    await fsp.writeFile(path.join(dir, 'global_prefs_override.xml'), prefs('30'));
    expect(await readCheckpointPeriod(dir)).toBe(30);
  });

  it('takes from a broken override what BOINC takes, and clamps a negative interval to 0 as parse_override does', async () => {
    await fsp.writeFile(path.join(dir, 'global_prefs.xml'), prefs('90'));
    await fsp.writeFile(path.join(dir, 'global_prefs_override.xml'), '<global_preferences><disk_interval>');
    expect(await readCheckpointPeriod(dir)).toBe(90);
    await fsp.writeFile(path.join(dir, 'global_prefs_override.xml'), prefs('-5'));
    expect(await readCheckpointPeriod(dir)).toBe(0);
  });
});
