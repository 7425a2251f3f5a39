/**
 * Our client side against Debian's real libboinc-api: byte layout of the channels, a live
 * MAP_SHARED mapping against our positioned reads/writes, and a real BOINC app (test/c/ipc_worker.c)
 * controlled through every message BOINC sends.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessState } from '../src/ipc/contract.js';
import { Channel, MMAP_FILE_NAME, MSG_CHANNEL_SIZE, MmapChannels, SHARED_MEM_SIZE, createMmapFile } from '../src/ipc/mmap.js';
import { heartbeatText } from '../src/ipc/messages.js';
import { TaskRun, buildProbe, buildWorker, exists, fileText, makeSlot, sleep } from './ipc-helpers.js';
import { describeLiveness, startLiveness, type Liveness } from './ipc-liveness.js';

const run = promisify(execFile);
let probe: string;
let worker: string;
const slots: string[] = [];
const runs: TaskRun[] = [];
async function slot(init = {}): Promise<string> {
  const s = await makeSlot(init);
  slots.push(s);
  return s;
}
async function start(s: string, args: string[], opts: { heartbeats?: boolean } = {}): Promise<TaskRun> {
  const r = await TaskRun.start(s, worker, args, opts);
  runs.push(r);
  return r;
}

let liveness: Liveness;

beforeAll(async () => {
  [probe, worker] = await Promise.all([buildProbe(), buildWorker()]);
  liveness = await startLiveness(slot, start);
});

afterAll(async () => {
  await Promise.all(runs.map((r) => r.kill()));
  await Promise.all(slots.map((s) => fsp.rm(s, { recursive: true, force: true })));
});

describe('channel layout, byte for byte, against lib/app_ipc.h as compiled', () => {
  it('SHARED_MEM is 8 channels of 1024 bytes in our order', async () => {
    const { stdout } = await run(probe, ['layout']);
    expect(stdout).toBe(`size ${SHARED_MEM_SIZE}\nchannel_size ${MSG_CHANNEL_SIZE}\noffsets ${[0, 1, 2, 3, 4, 5, 6, 7].map((c) => c * MSG_CHANNEL_SIZE).join(' ')}\n`);
    expect(Channel.TRICKLE_DOWN).toBe(7);
  });

  it('what we send the real get_msg reads, and what the real send_msg writes we read, in identical bytes', async () => {
    const s = await slot();
    const file = path.join(s, MMAP_FILE_NAME);
    const texts = [0, 1, 2, 3, 4, 5, 6, 7].map((c) => `<m${c}>channel ${c}</m${c}>\nsecond line`);
    const ours = MmapChannels.open(file);
    texts.forEach((t, c) => expect(ours.sendMsg(c, t)).toBe(true));
    const oursBytes = await fsp.readFile(file);
    const dumped = (await run(probe, ['dump'], { cwd: s })).stdout;
    expect(dumped).toBe(texts.map((t, c) => `${c} ${t.replace(/\n/g, '\\n')}\n`).join(''));
    for (let c = 0; c < 8; c++) expect(ours.hasMsg(c)).toBe(false); // the real get_msg cleared each flag

    await createMmapFile(s);
    for (let c = 0; c < 8; c++) {
      expect((await run(probe, ['send', String(c), texts[c].replace(/\n/g, '\\n')], { cwd: s })).stdout).toBe('1\n');
    }
    const theirBytes = await fsp.readFile(file);
    expect(theirBytes.equals(oursBytes)).toBe(true);
    expect(theirBytes[5 * MSG_CHANNEL_SIZE]).toBe(1);
    expect(theirBytes.subarray(5 * MSG_CHANNEL_SIZE + 1, 5 * MSG_CHANNEL_SIZE + 1 + texts[5].length).toString()).toBe(texts[5]);
    expect(theirBytes[5 * MSG_CHANNEL_SIZE + 1 + texts[5].length]).toBe(0);
    texts.forEach((t, c) => expect(ours.getMsg(c)).toBe(t));
    ours.close();
  });

  it('both sides keep at most 1022 characters and refuse to overwrite an unread message', async () => {
    const s = await slot();
    const ours = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    const long = 'x'.repeat(1500);
    expect(ours.sendMsg(Channel.APP_STATUS, long)).toBe(true);
    expect((await run(probe, ['send', String(Channel.APP_STATUS), 'other'], { cwd: s })).stdout).toBe('0\n');
    expect((await run(probe, ['dump'], { cwd: s })).stdout).toBe(`5 ${'x'.repeat(1022)}\n`);
    expect((await run(probe, ['send', String(Channel.HEARTBEAT), 'y'.repeat(1500)], { cwd: s })).stdout).toBe('1\n');
    expect(ours.sendMsg(Channel.HEARTBEAT, 'mine')).toBe(false);
    expect(ours.getMsg(Channel.HEARTBEAT)).toBe('y'.repeat(1022));
    ours.close();
  });

  it('our pread/pwrite and a live MAP_SHARED mapping in the real library see each other at once (300 round trips)', async () => {
    const s = await slot();
    const ours = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    const echo = spawn(probe, ['echo', '300'], { cwd: s, stdio: ['ignore', 'pipe', 'inherit'] });
    const echoExit = new Promise((r) => echo.once('exit', r));
    let out = '';
    echo.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const t0 = performance.now();
    while (!out.includes('ready')) {
      if (echo.exitCode !== null || performance.now() - t0 > 30_000) throw new Error('echo program did not start');
      await sleep(5);
    }
    for (let k = 0; k < 300; k++) {
      const text = `<round>${k}</round>${'z'.repeat(k * 3)}`;
      expect(ours.sendMsg(Channel.PROCESS_CONTROL_REQUEST, text)).toBe(true);
      let reply: string | undefined;
      while ((reply = ours.getMsg(Channel.PROCESS_CONTROL_REPLY)) === undefined) {
        if (performance.now() - t0 > 30_000) throw new Error(`no echo for round ${k}`);
        await new Promise((r) => setImmediate(r));
      }
      expect(reply).toBe(text);
    }
    await echoExit;
    expect(out).toContain('done');
    ours.close();
  });

  it('our heartbeat reaches the real library as BOINC formats it', async () => {
    const s = await slot();
    const ours = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    ours.sendMsg(Channel.HEARTBEAT, heartbeatText(123456789, 4.5e9, true));
    expect((await run(probe, ['dump'], { cwd: s })).stdout)
      .toBe('4 <heartbeat/><wss>1.234568e+08</wss><max_wss>4.500000e+09</max_wss><network_suspended/>\n');
    ours.close();
  });
});

describe('a real BOINC app (libboinc-api 7.20.5) under our client side', () => {
  it('reports CPU time, fraction done and want_network; checkpoints are detected; suspend stops it, resume continues; quit ends it without a finish file; a restart resumes from its checkpoint and finishes', async () => {
    const s = await slot();
    const target = 100_000_000;
    const r = await start(s, ['--target', String(target), '--step-ms', '2', '--want-network']);
    await r.waitFor('status and a checkpoint', () => r.control.status.fractionDone > 0 && r.actions.some((a) => a.kind === 'checkpoint'));
    const st = r.control.status;
    expect(st.currentCpuTime).toBeGreaterThan(0);
    expect(st.checkpointCpuTime).toBeLessThanOrEqual(st.currentCpuTime);
    expect(st.wantNetwork).toBe(true);
    expect(st.fractionDone * target).toBeLessThanOrEqual((await r.progress()).count);
    const cp = r.actions.find((a) => a.kind === 'checkpoint');
    expect(cp).toMatchObject({ kind: 'checkpoint' });
    expect(Number(await fileText(s, 'checkpoint.txt'))).toBeGreaterThan(0);

    r.control.suspend();
    expect(r.control.state).toBe(ProcessState.SUSPENDED);
    // The worker stops at its next 0.1 s SIGALRM once the timer thread has read the message.
    await r.waitFor('work to stop', async () => {
      const a = await r.progress();
      await sleep(300);
      return (await r.progress()).count === a.count;
    });
    const stopped = await r.progress();
    const statusAt = r.control.status.receivedAt;
    await sleep(1500);
    expect((await r.progress()).count).toBe(stopped.count);
    expect(r.control.status.receivedAt).toBe(statusAt); // the API sends no status while suspended
    expect(r.running).toBe(true); // heartbeats went on

    r.control.resume();
    expect(r.control.state).toBe(ProcessState.EXECUTING);
    await r.waitFor('progress after resume', async () => (await r.progress()).count > stopped.count, 5000);

    r.control.quit();
    expect(r.control.state).toBe(ProcessState.QUIT_PENDING);
    expect(await r.exited).toMatchObject({ code: 0, signal: null });
    expect(await exists(s, 'boinc_finish_called')).toBe(false);
    const saved = Number(await fileText(s, 'checkpoint.txt'));
    expect(saved).toBeGreaterThan(0);

    await createMmapFile(s); // zeroed before every start, as the client does
    const again = await start(s, ['--target', String(saved + 50), '--step-ms', '2']);
    expect(await again.exited).toMatchObject({ code: 0 });
    expect(await fileText(s, 'starts.txt')).toBe(`0\n${saved}\n`);
    expect(await fileText(s, 'result.txt')).toBe(`${saved + 50}\n`);
    expect(await fileText(s, 'boinc_finish_called')).toBe('0\n');
    expect(again.control.status.fractionDone).toBe(1); // the final status sent during boinc_finish
  });

  it('abort ends it with 194 (EXIT_ABORTED_BY_CLIENT)', async () => {
    const s = await slot();
    const r = await start(s, ['--target', '100000000', '--step-ms', '2']);
    await r.waitFor('first status', () => r.control.status.receivedAt !== undefined);
    r.control.abort();
    expect(r.control.state).toBe(ProcessState.ABORT_PENDING);
    expect(await r.exited).toMatchObject({ code: 194 });
    expect(await exists(s, 'boinc_finish_called')).toBe(false);
  });

  it('quit while suspended: the real app sleeps on and only the 60 s QUIT_TIMEOUT kill ends it', async () => {
    const s = await slot();
    const r = await start(s, ['--target', '100000000', '--step-ms', '2']);
    await r.waitFor('first status', () => r.control.status.receivedAt !== undefined);
    r.control.suspend();
    await sleep(300);
    r.control.quit();
    await sleep(2500);
    expect(r.running).toBe(true);
    const actions = await r.control.poll(performance.now() + 60_001, { wss: 0, maxWss: 0 });
    expect(actions).toEqual([expect.objectContaining({ kind: 'kill', reason: 'quit_timeout' })]);
    r.child.kill('SIGKILL'); // what the lifecycle does with a kill action
    expect(await r.exited).toMatchObject({ signal: 'SIGKILL' });
  });

  it('boinc_finish_message and boinc_temporary_exit write the files the client reads', async () => {
    const s1 = await slot();
    const s2 = await slot();
    const [fin, tmp] = await Promise.all([
      start(s1, ['--target', '20', '--step-ms', '1', '--exit-status', '3', '--message', 'all done', '--notice']),
      start(s2, ['--temporary-exit', '77', '--message', 'waiting for VM', '--notice']),
    ]);
    expect(await fin.exited).toMatchObject({ code: 3 });
    expect(await fileText(s1, 'boinc_finish_called')).toBe('3\nall done\nnotice\n');
    expect(await tmp.exited).toMatchObject({ code: 0 });
    expect(await fileText(s2, 'boinc_temporary_exit')).toBe('77\nwaiting for VM\nnotice\n');
    expect(await exists(s2, 'boinc_lockfile')).toBe(false); // boinc_exit unlocks, which deletes it
  });
});

describeLiveness('client liveness as the real app checks it (started before the other tests)', () => liveness);
