import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseContainerManagerArgs } from '../src/container/args.js';
import { parseContainerConfig } from '../src/container/config.js';
import { containerName } from '../src/container/names.js';
import { openNoFollow } from '../src/container/outputs.js';
import { createArgs, memoryLimitMb } from '../src/container/run-args.js';
import { placeholder } from '../src/container/workdir.js';
import type { JobDescription } from '../src/job/jobfile.js';

/** The container manager's pure parts: its config, the `create` arguments, names, and the no-follow reads. */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'altplat-ctunit-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const job: JobDescription = {
  platform: 'x86_64-pc-linux-gnu', resultName: 'r_1', wuName: 'w', appName: 'a', workingDir: '/wc', mainProgram: 'prog',
  commandLine: '--n 3 "two words"', appFiles: [], inputs: [], outputs: [], rscFpopsEst: 1, flops: 1,
};

describe('container_config.xml', () => {
  it('reads the reference config; paths stay inside the folder; bad values are named errors', () => {
    const ref = fs.readFileSync(path.resolve('alt_platforms/x86_64-pc-linux-gnu/container_config.xml'), 'utf8');
    expect(parseContainerConfig(ref, '/p')).toEqual({
      rootfs: '/p/image/rootfs.tar', engineConf: '/p/containers.conf', engine: 'podman', guestDir: '/work/job',
      pidsLimit: 256, defaultMemoryMb: 512, network: false,
    });
    const bad = (body: string) => { try { parseContainerConfig(`<container><rootfs>r.tar</rootfs>${body}</container>`, '/p'); return 'ok'; } catch (e) { return (e as { code: string }).code; } };
    expect(bad('')).toBe('ok');
    expect(bad('<engine>lxc</engine>')).toBe('CONTAINER_CONFIG_BAD_VALUE');
    expect(bad('<guest_dir>/work/../etc</guest_dir>')).toBe('CONTAINER_CONFIG_BAD_VALUE');
    expect(bad('<pids_limit>1</pids_limit>')).toBe('CONTAINER_CONFIG_BAD_VALUE');
    expect(bad('<engine_conf>../x</engine_conf>')).toBe('CONTAINER_CONFIG_BAD_PATH');
    expect(() => parseContainerConfig('<container/>', '/p')).toThrow(expect.objectContaining({ code: 'CONTAINER_CONFIG_MISSING_ELEMENT' }));
    expect(parseContainerConfig('<container><rootfs>r</rootfs><network/></container>', '/p').network).toBe(true);
  });

  it('the manager\'s arguments: --config, --working-dir, --cleanup; the working copy defaults to the bundle\'s folder', () => {
    expect(parseContainerManagerArgs(['--config', 'c.xml', '--working-dir', '/wc', '--platform', 'p'], {}, '/bundle'))
      .toMatchObject({ configFile: 'c.xml', workingDir: '/wc', platform: 'p', cleanup: false });
    expect(parseContainerManagerArgs(['--cleanup'], {}, '/bundle')).toMatchObject({ configFile: 'container_config.xml', workingDir: '/bundle', cleanup: true });
  });
});

describe('the container for a task', () => {
  const config = parseContainerConfig('<container><rootfs>r.tar</rootfs></container>', '/p');
  const args = createArgs({
    name: 'boinc__proj__r_1__0123abcd', image: 'localhost/altplat-rootfs:ab', config, job,
    workDir: '/data/slots/0/altplat_container', inputs: [{ openName: 'prog', host: '/data/projects/p/prog_1' }, { openName: 'in/x', host: '/data/projects/p/x' }],
    labels: { dataDir: '/data', slot: '/data/slots/0', result: 'r_1', platform: 'x86_64-pc-linux-gnu' },
    memoryBytes: 100 * (1 << 20), cpus: 1.5, user: '1000:1000', baselineEnv: { GLIBC_TUNABLES: 'glibc.cpu.hwcaps=-AVX2' },
  });

  it('is isolated and limited: no network, read-only root, no capabilities, no new privileges, pids/memory/CPU limits', () => {
    for (const a of ['--network=none', '--read-only', '--cap-drop=all', '--security-opt=no-new-privileges']) expect(args).toContain(a);
    const after = (flag: string) => args[args.indexOf(flag) + 1];
    expect(after('--pids-limit')).toBe('256');
    expect(after('--memory')).toBe('100m');
    expect(after('--memory-swap')).toBe('100m');
    expect(after('--cpus')).toBe('1.5');
    expect(after('--user')).toBe('1000:1000');
    expect(after('--log-driver')).toBe('none');
    expect(args).toContain('GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2');
    expect(args).toContain('LD_LIBRARY_PATH=.');
    expect(memoryLimitMb(1)).toBe(32);
  });

  it('binds the job folder at guest_dir and every input read-only at its open name; labels the task', () => {
    expect(args).toContain('type=bind,source=/data/slots/0/altplat_container,destination=/work/job');
    expect(args).toContain('type=bind,source=/data/projects/p/prog_1,destination=/work/job/prog,readonly');
    expect(args).toContain('type=bind,source=/data/projects/p/x,destination=/work/job/in/x,readonly');
    for (const l of ['altplat.data_dir=/data', 'altplat.slot=/data/slots/0', 'altplat.result=r_1', 'altplat.platform=x86_64-pc-linux-gnu']) expect(args).toContain(l);
    // The program is started by the wrapper with its arguments intact, at the end.
    const script = args.at(-1)!;
    expect(args.slice(-4, -1)).toEqual(['localhost/altplat-rootfs:ab', '/bin/sh', '-c']);
    expect(script).toContain(`'./prog' '--n' '3' 'two words' >.altplat_stdout 2>>.altplat_stderr`);
    expect(script).toMatch(/^renice -n 19 -p \$\$ .*while \[ ! -e \.altplat_go \]/);
    // The script really passes the arguments through (run with a stand-in program).
    const dir = fs.mkdtempSync(path.join(tmp, 'sh-'));
    fs.writeFileSync(path.join(dir, 'prog'), '#!/bin/sh\nprintf "%s|" "$@"\nexit 7\n', { mode: 0o755 });
    fs.writeFileSync(path.join(dir, '.altplat_go'), '');
    let status = 0;
    try { execFileSync('/bin/sh', ['-c', script], { cwd: dir }); } catch (e) { status = (e as { status: number }).status; }
    expect(status).toBe(7);
    expect(fs.readFileSync(path.join(dir, '.altplat_stdout'), 'utf8')).toBe('--n|3|two words|');
    expect(fs.readFileSync(path.join(dir, '.altplat_status'), 'utf8')).toBe('7\n');
  });

  it('refuses a path --mount cannot carry, and an open name that climbs out', () => {
    const base = { name: 'n', image: 'i', config, job, workDir: '/w', labels: { dataDir: '/d', slot: '/d/s', result: 'r', platform: 'p' }, memoryBytes: 0, cpus: 1, user: '0:0', baselineEnv: {} };
    expect(() => createArgs({ ...base, inputs: [{ openName: 'x', host: '/d/a,readonly=false' }] })).toThrow(/comma/);
    expect(() => createArgs({ ...base, inputs: [{ openName: '../x', host: '/d/a' }] })).toThrow(expect.objectContaining({ code: 'JOB_BAD_OPEN_NAME' }));
  });

  it('is named boinc__<project>__<result>__<data dir hash>, safe for the engine', () => {
    expect(containerName('/data/projects/example.org_proj', 'wu_1_r0', '/data')).toMatch(/^boinc__example\.org_proj__wu_1_r0__[0-9a-f]{8}$/);
    expect(containerName('/a/projects/p', 'r', '/a')).not.toBe(containerName('/b/projects/p', 'r', '/b'));
    expect(containerName('/d/projects/p', 'we ird/na:me', '/d')).toMatch(/^boinc__p__we_ird_na_me__/);
  });
});

describe('reading what the program left, never through a link', () => {
  it('openNoFollow reads regular files only; links (to files or on the way) and fifos are "not there"', async () => {
    const root = fs.mkdtempSync(path.join(tmp, 'work-'));
    fs.writeFileSync(path.join(root, 'ok'), 'fine');
    fs.symlinkSync('/etc/passwd', path.join(root, 'link'));
    fs.symlinkSync('/etc', path.join(root, 'dir'));
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    fs.mkdirSync(path.join(root, 'sub'));
    fs.writeFileSync(path.join(root, 'sub', 'f'), 'x');
    const read = async (rel: string) => { const fh = await openNoFollow(root, rel); if (!fh) return undefined; try { return (await fh.readFile()).toString(); } finally { await fh.close(); } };
    expect(await read('ok')).toBe('fine');
    expect(await read('sub/f')).toBe('x');
    expect(await read('link')).toBeUndefined();
    expect(await read('dir/passwd')).toBeUndefined();
    expect(await read('fifo')).toBeUndefined();
    expect(await read('missing')).toBeUndefined();
  });

  it('an input placeholder replaces whatever the program left at the name, without following it', async () => {
    const root = fs.mkdtempSync(path.join(tmp, 'ph-'));
    const outside = path.join(tmp, 'outside.txt');
    fs.writeFileSync(outside, 'keep');
    fs.symlinkSync(outside, path.join(root, 'in'));
    fs.symlinkSync(tmp, path.join(root, 'd'));
    await placeholder(root, 'in');
    await placeholder(root, 'd/x');
    expect(fs.lstatSync(path.join(root, 'in')).isFile()).toBe(true);
    expect(fs.lstatSync(path.join(root, 'd')).isDirectory()).toBe(true);
    expect(fs.readFileSync(outside, 'utf8')).toBe('keep');
    expect(fs.existsSync(path.join(tmp, 'x'))).toBe(false);
  });
});
