import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The built CLI (npm test builds first): a tsx start costs ~1 s of CPU per call on these machines.
const MAIN = path.resolve('dist/src/cli/main.js');
const EXAMPLE = path.resolve('fixtures/example-data');
const REQUESTS = path.resolve('fixtures/requests');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-cli-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Run the CLI from source (tsx), as a volunteer would run `altplat`. */
function altplat(args: string[], opts: { input?: Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(opts.input ?? Buffer.alloc(0));
  });
}

/** A copy of the example data dir, so its caches do not land in the repository. */
function exampleCopy(name: string): string {
  const d = path.join(tmp, name);
  fs.cpSync(EXAMPLE, d, { recursive: true });
  fs.rmSync(path.join(d, 'altplat'), { recursive: true, force: true });
  return d;
}

describe('altplat list', () => {
  it('--json: the shape of the issue; good ones advertised, bad ones with reasons; exit 0', async () => {
    const dataDir = exampleCopy('json');
    const r = await altplat(['list', '--json', '--data-dir', dataDir, '--host-platform', 'windows_x86_64']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout.toString());
    expect(Object.keys(j)).toEqual(['dataDir', 'platforms', 'advertised', 'hypervisors']);
    expect(j.dataDir).toBe(dataDir);
    expect(j.advertised).toEqual(['i686-pc-linux-gnu', 'x86_64-pc-linux-gnu']);
    expect(j.platforms.map((p: { name: string; status: string }) => [p.name, p.status])).toEqual([
      ['arm-unknown-linux-gnueabihf', 'unsupported'],
      ['i686-pc-linux-gnu', 'ok'],
      ['sparc-sun-solaris', 'invalid'],
      ['x86_64-apple-darwin', 'unsupported'],
      ['x86_64-pc-freebsd', 'invalid'],
      ['x86_64-pc-linux-gnu', 'ok'],
    ]);
    for (const p of j.platforms) {
      expect(p).toMatchObject({ name: expect.any(String), dir: path.join(dataDir, 'alt_platforms', p.name), status: expect.any(String), reasons: expect.any(Array) });
      expect(p.version === null || typeof p.version === 'string').toBe(true);
      expect(p.status === 'ok' ? p.reasons.length === 0 : p.reasons.length > 0).toBe(true);
    }
    expect(j.platforms.find((p: { name: string }) => p.name === 'sparc-sun-solaris').reasons[0].code).toBe('FILE_SHA256_MISMATCH');
    expect(j.platforms.find((p: { name: string }) => p.name === 'x86_64-pc-freebsd').version).toBeNull();
    for (const h of j.hypervisors) expect(Object.keys(h)).toEqual(['name', 'version', 'path']);
    expect(j.hypervisors.find((h: { name: string }) => h.name === 'qemu').version).toMatch(/^7\.2\./);
  });

  it('without --host-platform, this Linux host runs the Linux platforms natively and does not advertise them', async () => {
    if (process.platform !== 'linux' || process.arch !== 'x64') return;
    const dataDir = exampleCopy('native');
    const j = JSON.parse((await altplat(['list', '--json', '--data-dir', dataDir])).stdout.toString());
    const linux = j.platforms.find((p: { name: string }) => p.name === 'x86_64-pc-linux-gnu');
    expect(linux).toMatchObject({ status: 'ok', native: true, advertised: false });
    expect(j.advertised).not.toContain('x86_64-pc-linux-gnu');
  });

  it('prints a readable table', async () => {
    const dataDir = exampleCopy('table');
    const r = await altplat(['list', '--data-dir', dataDir, '--host-platform', 'windows_x86_64']);
    expect(r.code).toBe(0);
    const t = r.stdout.toString();
    expect(t).toMatch(/^data dir: +.*example|^data dir: +\//m);
    expect(t).toMatch(/^host platforms: windows_x86_64 \(from --host-platform\)$/m);
    expect(t).toMatch(/^hypervisors: +qemu 7\.2\.\d+ at \S+qemu-system-x86_64/m);
    expect(t).toMatch(/^NAME +STATUS +VERSION +MANAGER +CPU +REASONS$/m);
    expect(t).toMatch(/^i686-pc-linux-gnu +ok +1\.0\.0 +manager +Nehalem-v1 +-$/m);
    expect(t).toMatch(/^sparc-sun-solaris +invalid +1\.0\.0 +manager +- +FILE_SHA256_MISMATCH: file "image\/disk\.img" has sha256/m);
    expect(t).toMatch(/^ +REQ_RAM: needs 1048576 MiB of RAM/m);
    expect(t).toMatch(/^advertised: +i686-pc-linux-gnu, x86_64-pc-linux-gnu$/m);
  });

  it('reads BOINC_DATA_DIR when --data-dir is absent', async () => {
    const dataDir = exampleCopy('env');
    const r = await altplat(['list', '--json'], { env: { BOINC_DATA_DIR: dataDir } });
    expect(JSON.parse(r.stdout.toString()).dataDir).toBe(dataDir);
  });

  it('exit 2 for usage errors and unusable data dirs', async () => {
    expect((await altplat(['list', '--bogus'])).code).toBe(2);
    expect((await altplat(['list', '--data-dir', path.join(tmp, 'missing')])).code).toBe(2);
    const file = path.join(tmp, 'a-file');
    fs.writeFileSync(file, '');
    const r = await altplat(['list', '--data-dir', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is not a folder/);
    expect((await altplat(['list', '--data-dir', tmp, '--host-platform', 'no spaces'])).code).toBe(2);
  });

  it('on a data dir mixing every bad case with good ones: exit 0, every platform reported, nothing hangs', async () => {
    const dataDir = path.join(tmp, 'all');
    fs.cpSync(path.resolve('fixtures/platforms'), path.join(dataDir, 'alt_platforms'), { recursive: true, verbatimSymlinks: true });
    const r = await altplat(['list', '--json', '--data-dir', dataDir]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout.toString());
    const folders = fs.readdirSync(path.resolve('fixtures/platforms'), { withFileTypes: true }).filter((e) => e.isDirectory()).length;
    expect(j.platforms.length).toBe(folders);
    // Exactly the good ones are advertised (the pinned-host table is fixtures/platforms/expected.json; here the
    // real host decides hypervisors and KVM, so only the invalid ones are certain never to be advertised).
    for (const p of j.platforms as { name: string; status: string }[]) {
      if (p.status === 'invalid') expect(j.advertised).not.toContain(p.name);
    }
    expect(j.platforms.find((p: { name: string }) => p.name === 'bad-entity-bomb').reasons[0].code).toBe('DEF_DOCTYPE');
  });
});

describe('altplat request', () => {
  it("patches the paper's Windows request with the example platforms, byte-exact elsewhere", async () => {
    const dataDir = exampleCopy('req');
    const input = fs.readFileSync(path.join(REQUESTS, 'windows-x86_64.xml'));
    const r = await altplat(['request', '--data-dir', dataDir, path.join(REQUESTS, 'windows-x86_64.xml')]);
    expect(r.code).toBe(0);
    expect(Buffer.compare(r.stdout, fs.readFileSync(path.join(REQUESTS, 'expected', 'windows-x86_64.xml')))).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(input.length);
    expect(r.stderr).toMatch(/added 2 alternate platforms: i686-pc-linux-gnu, x86_64-pc-linux-gnu/);
  });

  it('reads standard input with `-` and writes -o atomically', async () => {
    const dataDir = exampleCopy('req-o');
    const out = path.join(tmp, 'patched.xml');
    const r = await altplat(['request', '--data-dir', dataDir, '-o', out, '-'], { input: fs.readFileSync(path.join(REQUESTS, 'linux-x86_64.xml')) });
    expect(r.code).toBe(0);
    expect(r.stdout.length).toBe(0);
    // Its own primary (x86_64-pc-linux-gnu) is not added again; i686 is.
    expect(Buffer.compare(fs.readFileSync(out), fs.readFileSync(path.join(REQUESTS, 'expected', 'linux-x86_64.xml')))).toBe(0);
    expect(fs.readdirSync(tmp).filter((f) => f.includes('patched.xml') && f !== 'patched.xml')).toEqual([]);
  });

  it('leaves an anonymous-platform request as it is', async () => {
    const r = await altplat(['request', '--data-dir', exampleCopy('anon'), path.join(REQUESTS, 'anonymous.xml')]);
    expect(r.code).toBe(0);
    expect(Buffer.compare(r.stdout, fs.readFileSync(path.join(REQUESTS, 'anonymous.xml')))).toBe(0);
    expect(r.stderr).toMatch(/anonymous platform: nothing added/);
  });

  it('patches a request the real client wrote with a task stderr that breaks its CDATA (exit 0, warning, byte-exact)', async () => {
    // The example data dir has sound i686 and x86_64 Linux platforms; the request's own primary
    // (x86_64-pc-linux-gnu) counts as the host's, so only i686-pc-linux-gnu is added.
    const file = path.join(REQUESTS, 'stderr-breaks-cdata.xml');
    const input = fs.readFileSync(file);
    const r = await altplat(['request', '--data-dir', exampleCopy('req-tolerant'), file]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: the scheduler request is not well-formed inside <result>/);
    expect(r.stderr).toMatch(/added 1 alternate platform: i686-pc-linux-gnu/);
    const ins = '    <alt_platform>\n        <name>i686-pc-linux-gnu</name>\n    </alt_platform>\n';
    const at = input.indexOf('</platform_name>\n') + '</platform_name>\n'.length;
    expect(Buffer.compare(r.stdout, Buffer.concat([input.subarray(0, at), Buffer.from(ins), input.subarray(at)]))).toBe(0);
  });

  it('refuses a request without <platform_name> (exit 1) and a missing file (exit 2)', async () => {
    const noName = await altplat(['request', '--data-dir', exampleCopy('bad'), path.join(REQUESTS, 'no-platform-name.xml')]);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toMatch(/no <platform_name>.*\[REQUEST_NO_PLATFORM_NAME\]/);
    expect(noName.stdout.length).toBe(0);
    expect((await altplat(['request', path.join(tmp, 'nope.xml')])).code).toBe(2);
    // An output that cannot be written: a clear message and exit 2, not a stack trace; nothing left behind.
    const unwritable = await altplat(['request', '--data-dir', exampleCopy('bad-o'), '-o', path.join(tmp, 'no-such-dir', 'out.xml'), path.join(REQUESTS, 'linux-x86_64.xml')]);
    expect(unwritable.code).toBe(2);
    expect(unwritable.stderr).toMatch(/cannot write the patched request to .*no-such-dir.*ENOENT/);
    expect(unwritable.stderr).not.toMatch(/\n\s+at /);
    expect((await altplat(['request'])).code).toBe(2);
  });
});
