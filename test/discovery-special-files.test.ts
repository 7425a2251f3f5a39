/**
 * Special files where a definition or a listed file should be (review cases): a named pipe must never
 * make the scan hang, and the reason must say what was found.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { discoverPlatforms } from '../src/discovery/discover.js';
import type { HostInfo } from '../src/host/probes.js';

const expected = JSON.parse(fs.readFileSync(path.resolve('fixtures/platforms/expected.json'), 'utf8')) as { host: HostInfo };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-special-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('named pipes in a platform folder', () => {
  it('alt_platform.xml or a listed file that is a FIFO: invalid with a clear reason, no hang', async () => {
    const alt = path.join(tmp, 'alt_platforms');
    const a = path.join(alt, 'pipe-definition');
    const b = path.join(alt, 'pipe-file');
    fs.mkdirSync(a, { recursive: true });
    fs.cpSync(path.resolve('fixtures/platforms/good-minimal'), b, { recursive: true });
    execFileSync('mkfifo', [path.join(a, 'alt_platform.xml'), path.join(b, 'data')]);
    fs.writeFileSync(path.join(b, 'alt_platform.xml'),
      `<alt_platform><name>pipe-file</name><version>1.0.0</version><manager><file_name>manager</file_name></manager><file><name>data</name><sha256>${'0'.repeat(64)}</sha256></file></alt_platform>`);
    const r = await discoverPlatforms({ dataDir: tmp, host: expected.host, hostPlatforms: [] });
    expect(r.platforms.map((p) => [p.name, p.status, p.reasons.map((x) => x.code)])).toEqual([
      ['pipe-definition', 'invalid', ['DEF_UNREADABLE']],
      ['pipe-file', 'invalid', ['FILE_NOT_REGULAR']],
    ]);
    expect(r.platforms[0].reasons[0].message).toBe('alt_platform.xml is not a regular file (it is a named pipe)');
  });
});
