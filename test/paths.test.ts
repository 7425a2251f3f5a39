import { describe, expect, it } from 'vitest';
import { escapeProjectUrl, resolveDataDir, defaultDataDir } from '../src/paths.js';

describe('escapeProjectUrl (lib/url.cpp escape_project_url)', () => {
  it.each([
    ['https://example.org/demo/', 'example.org_demo'],
    ['http://boinc.bakerlab.org/rosetta/', 'boinc.bakerlab.org_rosetta'],
    ['https://www.worldcommunitygrid.org/', 'www.worldcommunitygrid.org'],
    ['https://a.b:8080/x~y/', 'a.b_8080_x_y'],
    ['einstein.phys.uwm.edu', 'einstein.phys.uwm.edu'],
    ['https://x.org/p//', 'x.org_p_'],
  ])('%s -> %s', (url, want) => expect(escapeProjectUrl(url)).toBe(want));
});

describe('resolveDataDir', () => {
  it('prefers the flag, then BOINC_DATA_DIR, then the OS default', () => {
    expect(resolveDataDir('/tmp/a', { BOINC_DATA_DIR: '/tmp/b' })).toBe('/tmp/a');
    expect(resolveDataDir(undefined, { BOINC_DATA_DIR: '/tmp/b' })).toBe('/tmp/b');
    expect(resolveDataDir(undefined, {})).toBe(defaultDataDir());
    expect(defaultDataDir('win32')).toBe('C:\\ProgramData\\BOINC');
    expect(defaultDataDir('darwin')).toBe('/Library/Application Support/BOINC Data');
    expect(defaultDataDir('linux')).toBe('/var/lib/boinc-client');
  });
});
