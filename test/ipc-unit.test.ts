/**
 * The IPC building blocks, each checked against the real thing where one exists here: glibc's
 * printf, the real libboinc's boinc_resolve_filename, init_data.xml parser and FILE_LOCK.
 */
import { execFile } from 'node:child_process';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatE, formatF } from '../src/ipc/cformat.js';
import { openClientControl, ABORT_TIMEOUT_MS, CONTROL_STUCK_MS, QUIT_TIMEOUT_MS } from '../src/ipc/client.js';
import { ProcessState } from '../src/ipc/contract.js';
import { parseInitData, readInitData, serializeInitData, writeInitData } from '../src/ipc/init-data.js';
import { SlotLock } from '../src/ipc/lockfile.js';
import { appStatusText, heartbeatText, parseAppStatus } from '../src/ipc/messages.js';
import { Channel, MmapChannels, createMmapFile, MMAP_FILE_NAME, SHARED_MEM_SIZE } from '../src/ipc/mmap.js';
import { resolveFilename } from '../src/ipc/resolve.js';
import { buildPlainC } from './helpers/boinc-c.js';
import { buildProbe, makeSlot, repoRoot } from './ipc-helpers.js';

const run = promisify(execFile);
let probe: string;
const slots: string[] = [];
async function slot(init = {}): Promise<string> {
  const s = await makeSlot(init);
  slots.push(s);
  return s;
}
beforeAll(async () => {
  probe = await buildProbe();
});
afterAll(async () => {
  await Promise.all(slots.map((s) => fsp.rm(s, { recursive: true, force: true })));
});

describe('C-style number formatting (glibc printf as the reference)', () => {
  it('formatE/formatF print what printf("%e %f") prints, ties and carries included', async () => {
    const printf = await buildPlainC(path.join(repoRoot, 'test/c/ipc_printf.c'));
    const values = [0, -0, 1, -1, 0.1, 1 / 3, 2 / 3, 12345678, 1234564.5, 1234565.5, 0.5, 2.5, 9.9999995, 9.9999996,
      999999.5, 0.0000005, 0.0000015, 0.0000025, 1e-300, 5e-324, 1.7976931348623157e308, 123.456789e20, 2e9,
      -3.25e-7, 6.02214076e23, 0.125, 1e21, 4503599627370496.5, Infinity, -Infinity, NaN, 1.0000005, 2.0000005];
    const hex = values.map((v) => {
      const b = Buffer.alloc(8);
      b.writeDoubleBE(v);
      return b.toString('hex');
    });
    const { stdout } = await run(printf, hex);
    const want = stdout.trim().split('\n');
    const got = values.map((v) => `${formatE(v)} ${formatF(v)}`);
    expect(got).toEqual(want);
  });
});

describe('channel texts', () => {
  it('heartbeat and app_status are built like BOINC builds them', () => {
    expect(heartbeatText(12345678, 2e9)).toBe('<heartbeat/><wss>1.234568e+07</wss><max_wss>2.000000e+09</max_wss>');
    expect(heartbeatText(0, 1, true)).toBe('<heartbeat/><wss>0.000000e+00</wss><max_wss>1.000000e+00</max_wss><network_suspended/>');
    expect(appStatusText({ currentCpuTime: 1.5, checkpointCpuTime: 0, fractionDone: 0.25 })).toBe(
      '<current_cpu_time>1.500000e+00</current_cpu_time>\n<checkpoint_cpu_time>0.000000e+00</checkpoint_cpu_time>\n'
      + '<fraction_done>2.500000e-01</fraction_done>\n');
    // fraction_done is left out until the app sets one; want_network only when set
    expect(appStatusText({ currentCpuTime: 0, checkpointCpuTime: 0, fractionDone: -1, wantNetwork: true }))
      .toBe('<current_cpu_time>0.000000e+00</current_cpu_time>\n<checkpoint_cpu_time>0.000000e+00</checkpoint_cpu_time>\n<want_network>1</want_network>\n');
  });

  it('app_status is read as ACTIVE_TASK::get_app_status_msg reads it', () => {
    expect(parseAppStatus('<fraction_done>0.5</fraction_done>')).toMatchObject({ currentCpuTime: 0, checkpointCpuTime: 0, fractionDone: 0.5, wantNetwork: false });
    expect(parseAppStatus('<current_cpu_time>-3</current_cpu_time><checkpoint_cpu_time>-1e2</checkpoint_cpu_time>'))
      .toMatchObject({ currentCpuTime: 0, checkpointCpuTime: 0 });
    expect(parseAppStatus('<fraction_done>0.000000e+00</fraction_done>').fractionDone).toBeUndefined();
    expect(parseAppStatus('<other_pid>4242</other_pid>\n<wss>1048576.000000</wss>\n<want_network>1</want_network>'))
      .toMatchObject({ otherPid: 4242, wss: 1048576, wantNetwork: true });
    expect(parseAppStatus('<current_cpu_time>nan</current_cpu_time>').currentCpuTime).toBe(0);
  });
});

describe('boinc_mmap_file', () => {
  it('is created zeroed at 8192 bytes, and a longer file is zeroed but never truncated', async () => {
    const s = await slot();
    const file = path.join(s, MMAP_FILE_NAME);
    await fsp.writeFile(file, Buffer.alloc(10000, 7));
    await createMmapFile(s);
    const bytes = await fsp.readFile(file);
    expect(bytes.length).toBe(10000);
    expect(bytes.subarray(0, SHARED_MEM_SIZE).every((b) => b === 0)).toBe(true);
    expect(bytes[SHARED_MEM_SIZE]).toBe(7);
    expect((await fsp.stat(file)).mode & 0o777).toBe(0o666 & ~process.umask());
  });

  it('refuses a file shorter than SHARED_MEM with a named error', async () => {
    const s = await slot();
    await fsp.writeFile(path.join(s, MMAP_FILE_NAME), Buffer.alloc(100));
    expect(() => MmapChannels.open(path.join(s, MMAP_FILE_NAME))).toThrow(expect.objectContaining({ code: 'IPC_MMAP_TOO_SMALL' }));
  });
});

describe('client control queue and timeouts (client/app.cpp MSG_QUEUE, client/app_control.cpp)', () => {
  it('a suspend cancels a resume still queued behind an unread message, and the other way round', async () => {
    const s = await slot();
    const c = await openClientControl(s);
    const ch = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    c.quit(); // occupies the channel: nobody reads it
    c.resume();
    expect(c.pendingControl).toEqual(['<resume/>']);
    c.suspend();
    expect(c.pendingControl).toEqual([]);
    expect(c.state).toBe(ProcessState.SUSPENDED);
    c.resume();
    expect(c.pendingControl).toEqual(['<resume/>']);
    c.suspend();
    c.suspend();
    expect(c.pendingControl).toEqual(['<suspend/>']);
    // once the app takes <quit/>, the next poll delivers the oldest queued message
    expect(ch.getMsg(Channel.PROCESS_CONTROL_REQUEST)).toBe('<quit/>');
    await c.poll(0, { wss: 0, maxWss: 0 });
    expect(ch.getMsg(Channel.PROCESS_CONTROL_REQUEST)).toBe('<suspend/>');
    expect(c.pendingControl).toEqual([]);
    ch.close();
    await c.close();
  });

  it('a message stuck for 180 s asks for a kill; quit and abort time out after 60 s', async () => {
    let now = 1000;
    const s = await slot();
    const c = await openClientControl(s, { clock: () => now });
    const hb = { wss: 0, maxWss: 0 };
    c.suspend(); // delivered at once, never read
    c.resume(); // queued
    expect(await c.poll(now + CONTROL_STUCK_MS, hb)).toEqual([]);
    expect(await c.poll(now + CONTROL_STUCK_MS + 1, hb)).toEqual([expect.objectContaining({ kind: 'kill', reason: 'control_stuck' })]);
    expect(await c.poll(now + CONTROL_STUCK_MS + 2, hb)).toEqual([]); // asked once
    await c.close();

    const s2 = await slot();
    const q = await openClientControl(s2, { clock: () => now });
    q.quit();
    expect(q.state).toBe(ProcessState.QUIT_PENDING);
    expect(await q.poll(now + QUIT_TIMEOUT_MS, hb)).toEqual([]);
    expect(await q.poll(now + QUIT_TIMEOUT_MS + 1, hb)).toEqual([expect.objectContaining({ kind: 'kill', reason: 'quit_timeout' })]);
    now += 5000;
    q.abort(); // queued behind the unread quit
    expect(q.state).toBe(ProcessState.ABORT_PENDING);
    expect(await q.poll(now + ABORT_TIMEOUT_MS + 1, hb)).toEqual([expect.objectContaining({ kind: 'kill', reason: 'abort_timeout' })]);
    await q.close();
  });

  it('a heartbeat is skipped while the previous one is unread; status, checkpoints, trickles and graphics are read', async () => {
    const s = await slot();
    const c = await openClientControl(s, { initialCheckpointCpuTime: 2 });
    const app = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    await c.poll(1, { wss: 1, maxWss: 2 });
    await c.poll(2, { wss: 3, maxWss: 4 });
    expect(app.getMsg(Channel.HEARTBEAT)).toBe('<heartbeat/><wss>1.000000e+00</wss><max_wss>2.000000e+00</max_wss>');
    app.sendMsg(Channel.APP_STATUS, appStatusText({ currentCpuTime: 5, checkpointCpuTime: 2, fractionDone: 0.5 }));
    expect(await c.poll(3, { wss: 0, maxWss: 0 })).toEqual([]); // same checkpoint time as before: no checkpoint
    expect(c.status).toMatchObject({ currentCpuTime: 5, checkpointCpuTime: 2, fractionDone: 0.5, receivedAt: 3 });
    app.sendMsg(Channel.APP_STATUS, '<current_cpu_time>6</current_cpu_time><checkpoint_cpu_time>6</checkpoint_cpu_time><fraction_done>0</fraction_done><other_pid>77</other_pid>');
    app.sendMsg(Channel.TRICKLE_UP, '<have_new_trickle_up/>\n<have_new_upload_file/>\n');
    app.sendMsg(Channel.GRAPHICS_REPLY, '<remote_desktop_addr>localhost:5901</remote_desktop_addr>');
    expect(await c.poll(4, { wss: 0, maxWss: 0 })).toEqual([
      { kind: 'checkpoint', checkpointCpuTime: 6, fractionDone: 0.5 },
      { kind: 'trickle_up' },
      { kind: 'upload_file' },
    ]);
    expect(c.status).toMatchObject({ fractionDone: 0.5, otherPids: [77], remoteDesktopAddr: 'localhost:5901' });
    app.close();
    await c.close();
  });
});

describe('boinc_resolve_filename, ours against the real one', () => {
  it('symlink as is, <soft_link> first line, anything else the name itself', async () => {
    const s = await slot();
    const project = path.join(s, 'project');
    await fsp.mkdir(project);
    await fsp.writeFile(path.join(project, 'in_1'), 'data');
    await fsp.symlink(path.join(project, 'in_1'), path.join(s, 'sym'));
    await fsp.writeFile(path.join(s, 'link'), '<soft_link>project/in_1</soft_link>\n');
    await fsp.writeFile(path.join(s, 'spaced'), '<soft_link>  project/a&amp;b </soft_link>\nsecond line\n');
    await fsp.writeFile(path.join(s, 'second_line'), 'plain\n<soft_link>x</soft_link>\n');
    await fsp.writeFile(path.join(s, 'plain'), 'hello');
    await fsp.writeFile(path.join(s, 'empty'), '');
    for (const name of ['sym', 'link', 'spaced', 'second_line', 'plain', 'empty', 'missing', 'project']) {
      const { stdout } = await run(probe, ['resolve', name], { cwd: s });
      expect(await resolveFilename(s, name), name).toBe(path.resolve(s, stdout.replace(/\n$/, '')));
    }
  });
});

describe('init_data.xml', () => {
  it('what writeInitData writes, the real API reads back field for field', async () => {
    const s = await slot();
    await writeInitData(s, {
      projectDir: '/data/projects/example.org_x', boincDir: '/data', wuName: 'wu & co', resultName: 'wu_0', slot: 3,
      clientPid: 4321, appName: 'altplat_demo', userName: 'Ada <L>', teamName: 'T', appVersion: 712,
      wuCpuTime: 12.5, startingElapsedTime: 20.25, checkpointPeriod: 60, fractionDoneStart: 0.2, fractionDoneEnd: 0.8,
      ncpus: 2, rscFpopsEst: 1e12, rscFpopsBound: 1e13, rscMemoryBound: 5e8, rscDiskBound: 1e9, computationDeadline: 1.8e9,
      hostInfo: { pNcpus: 8, mNbytes: 16e9, osName: 'Linux', pModel: 'Test CPU @ 3GHz' },
      projectPreferences: '<color>blue</color>\n', appFiles: ['manager', 'image.qcow2'],
    });
    const { stdout } = await run(probe, ['initdata'], { cwd: s });
    const got = Object.fromEntries(stdout.trim().split('\n').filter((l) => !l.startsWith('app_file ')).map((l) => {
      const i = l.indexOf(' ');
      return [l.slice(0, i), l.slice(i + 1)];
    }));
    expect(got).toMatchObject({
      major_version: '7', minor_version: '20', release: '5', app_version: '712', app_name: 'altplat_demo',
      user_name: 'Ada <L>', team_name: 'T', project_dir: '/data/projects/example.org_x', boinc_dir: '/data',
      wu_name: 'wu & co', result_name: 'wu_0', shm_key: '-1', slot: '3', client_pid: '4321',
      wu_cpu_time: '12.500000', starting_elapsed_time: '20.250000', checkpoint_period: '60.000000',
      fraction_done_start: '0.200000', fraction_done_end: '0.800000', gpu_device_num: '-1', ncpus: '2.000000',
      rsc_fpops_est: '1000000000000.000000', rsc_fpops_bound: '10000000000000.000000', rsc_memory_bound: '500000000.000000',
      rsc_disk_bound: '1000000000.000000', computation_deadline: '1800000000.000000',
      host_p_ncpus: '8', host_m_nbytes: '16000000000.000000', host_os_name: 'Linux', host_p_model: 'Test CPU @ 3GHz',
      project_preferences: 'yes',
    });
    // <app_file> is written by write_init_data_file but libboinc-api 7.20.5's parser skips it
    // (lib/app_ipc.cpp parse_init_data_file has no case for it), so only our reader sees them.
    const back = await readInitData(s);
    expect(back).toMatchObject({ wuName: 'wu & co', clientPid: 4321, checkpointPeriod: 60, fractionDoneEnd: 0.8,
      projectPreferences: '<color>blue</color>\n', appFiles: ['manager', 'image.qcow2'] });
    expect(back.hostInfo).toMatchObject({ pNcpus: 8, pModel: 'Test CPU @ 3GHz' });
  });

  it('keeps write_init_data_file order and refuses bad files by name', async () => {
    const text = serializeInitData({ projectDir: '/p', boincDir: '/b', wuName: 'w', resultName: 'r', slot: 0, clientPid: 1 });
    const order = [...text.matchAll(/^<([a-z_]+)>/gm)].map((m) => m[1]);
    const expected = ['app_init_data', 'major_version', 'minor_version', 'release', 'app_version', 'userid', 'teamid', 'hostid',
      'app_name', 'project_dir', 'boinc_dir', 'authenticator', 'wu_name', 'result_name', 'shm_key', 'slot', 'client_pid',
      'wu_cpu_time', 'starting_elapsed_time', 'using_sandbox', 'vm_extensions_disabled', 'user_total_credit',
      'user_expavg_credit', 'host_total_credit', 'host_expavg_credit', 'resource_share_fraction', 'checkpoint_period',
      'fraction_done_start', 'fraction_done_end', 'gpu_type', 'gpu_device_num', 'gpu_opencl_dev_index', 'gpu_usage',
      'ncpus', 'rsc_fpops_est', 'rsc_fpops_bound', 'rsc_memory_bound', 'rsc_disk_bound', 'computation_deadline',
      'vbox_window', 'no_priority_change', 'process_priority', 'process_priority_special', 'host_info', 'proxy_info', 'global_preferences'];
    expect(order).toEqual(expected);
    expect(() => parseInitData('<app_init_data><slot>1</app_init_data>')).toThrow(expect.objectContaining({ code: 'INIT_DATA_NOT_WELL_FORMED' }));
    expect(() => parseInitData('<!DOCTYPE x [<!ENTITY a "b">]><app_init_data/>')).toThrow(expect.objectContaining({ code: 'INIT_DATA_DOCTYPE' }));
    expect(() => parseInitData('<app_init_data><slot>one</slot></app_init_data>')).toThrow(expect.objectContaining({ code: 'INIT_DATA_BAD_NUMBER' }));
    const s = await slot();
    await fsp.rm(path.join(s, 'init_data.xml'));
    await expect(readInitData(s)).rejects.toMatchObject({ code: 'INIT_DATA_MISSING' });
  });
});

describe('boinc_lockfile against the real FILE_LOCK', () => {
  it('a lock held by the real library stops ours, ours stops the real one, and unlock deletes the file', async () => {
    const s = await slot();
    const holder = spawn(probe, ['lock', 'hold'], { cwd: s, stdio: ['pipe', 'pipe', 'inherit'] });
    const first = await new Promise<string>((r) => holder.stdout!.once('data', (d: Buffer) => r(d.toString().trim())));
    expect(first).toBe('0');
    expect(await SlotLock.tryLock(s)).toBeUndefined();
    holder.stdin!.end();
    await new Promise((r) => holder.once('exit', r));

    const ours = await SlotLock.tryLock(s);
    expect(ours?.held).toBe(true);
    const { stdout } = await run(probe, ['lock'], { cwd: s });
    expect(Number(stdout.trim())).not.toBe(0); // ERR_FCNTL
    await ours!.unlock();
    await expect(fsp.access(path.join(s, 'boinc_lockfile'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await run(probe, ['lock'], { cwd: s })).stdout.trim()).toBe('0');
  });
});
