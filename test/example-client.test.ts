/*
 * examples/ts-client, installed as a user would: the package from `npm pack` (so only what the tarball
 * holds and exports is reachable), compiled with tsc against the packed .d.ts, run against a real
 * libboinc-api app (test/c/lifecycle_app.c) natively.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { makeReply, MASTER_URL, PROJECT, tempDataDir } from './lifecycle-helpers.js';

const run = promisify(execFile);
const LINUX = 'x86_64-pc-linux-gnu';
let app: string;
beforeAll(async () => {
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

describe('examples/ts-client from npm pack', () => {
  it('installs, type-checks against the packed types, and runs its own scheduler over three tasks', async () => {
    const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-example-'));
    const { stdout: packed } = await run('npm', ['pack', '--silent', '--pack-destination', tmp], { cwd: path.resolve('.') });
    const tgz = path.join(tmp, packed.trim().split('\n').at(-1)!);
    const { stdout: listing } = await run('tar', ['tzf', tgz]);
    expect(listing).not.toMatch(/^package\/(test|fixtures)\//m); // the `files` field keeps tests and fixtures out
    const ex = path.join(tmp, 'ts-client');
    await fsp.cp(path.resolve('examples/ts-client'), ex, { recursive: true, filter: (src) => !/node_modules|dist$/.test(src) });
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tgz], { cwd: ex });
    await run(process.execPath, [path.resolve('node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--typeRoots', path.resolve('node_modules/@types')], { cwd: ex });

    const dataDir = await tempDataDir('altplat-example-data-');
    const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(app), results: [
      { name: 'ex_a', input: 'success 30' }, { name: 'ex_b', input: 'success 60' }, { name: 'ex_c', input: 'success 10' },
    ] });
    const proj = path.join(dataDir, 'projects', PROJECT);
    await fsp.mkdir(proj, { recursive: true });
    for (const [n, b] of Object.entries(reply.files)) await fsp.writeFile(path.join(proj, n), b, { mode: 0o755 });
    const replyFile = path.join(dataDir, 'sched_reply.xml');
    await fsp.writeFile(replyFile, reply.xml);

    const { stdout } = await run(process.execPath, ['dist/client.js', dataDir, replyFile, MASTER_URL], { cwd: ex, timeout: 110_000 });
    const outcome = (name: string) => stdout.split('\n').find((l) => l.startsWith(`${name}: `) && l.includes('exit status'));
    expect(outcome('ex_c')).toMatch(/^ex_c: aborted, exit status 203, 0 restart\(s\)/);
    expect(outcome('ex_a')).toMatch(/^ex_a: success, exit status 0, 1 restart\(s\)/); // removed by the suspend, restarted
    expect(outcome('ex_b')).toMatch(/^ex_b: success, exit status 0, 2 restart\(s\)/); // suspend + quit
    expect(stdout).toContain('ex_b: preempted (quit)');
    expect(await fsp.readFile(path.join(proj, 'ex_a_out'), 'utf8')).toBe('done 30 steps in 2 runs\n');
    expect(await fsp.readFile(path.join(proj, 'ex_b_out'), 'utf8')).toBe('done 60 steps in 3 runs\n');
    await expect(fsp.access(path.join(proj, 'ex_c_out'))).rejects.toThrow();
  }, 180_000);
});
