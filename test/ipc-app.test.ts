/**
 * Our application side (BoincApp) under our client side, in the same scenarios as the real
 * library in ipc-interop.test.ts, and compared with the real library where both write the same thing.
 */
import { execFile, spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BoincApp, LOCK_BUSY_REASON } from '../src/ipc/app.js';
import { openClientControl } from '../src/ipc/client.js';
import { ProcessState, type ControlAction } from '../src/ipc/contract.js';
import { writeInitData } from '../src/ipc/init-data.js';
import { Channel, MMAP_FILE_NAME, MmapChannels, createMmapFile } from '../src/ipc/mmap.js';
import { TaskRun, buildProbe, buildWorker, exists, fileText, makeSlot, sleep, tsWorkerCommand } from './ipc-helpers.js';
import { describeLiveness, startLiveness, type Liveness } from './ipc-liveness.js';

const run = promisify(execFile);
let probe: string;
let cWorker: string;
const [node, nodeArgs] = tsWorkerCommand();
const slots: string[] = [];
const runs: TaskRun[] = [];
async function slot(init = {}): Promise<string> {
  const s = await makeSlot(init);
  slots.push(s);
  return s;
}
async function startTs(s: string, args: string[], opts: { heartbeats?: boolean } = {}): Promise<TaskRun> {
  const r = await TaskRun.start(s, node, [...nodeArgs, ...args], opts);
  runs.push(r);
  return r;
}
async function startC(s: string, args: string[], opts: { heartbeats?: boolean } = {}): Promise<TaskRun> {
  const r = await TaskRun.start(s, cWorker, args, opts);
  runs.push(r);
  return r;
}

let liveness: Liveness;

async function until(what: string, pred: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = performance.now() + ms;
  while (!(await pred())) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  [probe, cWorker] = await Promise.all([buildProbe(), buildWorker()]);
  liveness = await startLiveness(slot, startTs);
});

afterAll(async () => {
  await Promise.all(runs.map((r) => r.kill()));
  await Promise.all(slots.map((s) => fsp.rm(s, { recursive: true, force: true })));
});

describe('a TypeScript manager (BoincApp) under our client side', () => {
  it('reports CPU time, fraction done and want_network; checkpoints are detected; suspend/resume arrive as events; quit ends it without a finish file; a restart resumes from its checkpoint and finishes', async () => {
    const s = await slot();
    const target = 100_000_000;
    const r = await startTs(s, ['--target', String(target), '--step-ms', '2', '--want-network']);
    await r.waitFor('status and a checkpoint', () => r.control.status.fractionDone > 0 && r.actions.some((a) => a.kind === 'checkpoint'));
    const st = r.control.status;
    expect(st.currentCpuTime).toBeGreaterThan(0);
    expect(st.checkpointCpuTime).toBeLessThanOrEqual(st.currentCpuTime);
    expect(st.wantNetwork).toBe(true);
    expect(st.fractionDone * target).toBeLessThanOrEqual((await r.progress()).count);
    expect(Number(await fileText(s, 'checkpoint.txt'))).toBeGreaterThan(0);

    r.control.suspend();
    await r.waitFor('suspend event', async () => (await fileText(s, 'events.txt').catch(() => '')).includes('suspend'), 5000);
    await r.waitFor('work to stop', async () => {
      const a = await r.progress();
      await sleep(300);
      return (await r.progress()).count === a.count;
    });
    const stopped = await r.progress();
    const statusAt = r.control.status.receivedAt;
    await sleep(1500);
    expect((await r.progress()).count).toBe(stopped.count);
    expect(r.control.status.receivedAt).toBe(statusAt); // no status while suspended, as the real API
    expect(r.running).toBe(true);

    r.control.resume();
    await r.waitFor('progress after resume', async () => (await r.progress()).count > stopped.count, 5000);
    expect(await fileText(s, 'events.txt')).toMatch(/^suspend \d+\nresume \d+\n$/);

    r.control.quit();
    expect(await r.exited).toMatchObject({ code: 0, signal: null });
    expect(await exists(s, 'boinc_finish_called')).toBe(false);
    expect(await exists(s, 'boinc_lockfile')).toBe(false);
    const saved = Number(await fileText(s, 'checkpoint.txt'));
    expect(saved).toBeGreaterThan(0);

    await createMmapFile(s);
    const again = await startTs(s, ['--target', String(saved + 50), '--step-ms', '2']);
    expect(await again.exited).toMatchObject({ code: 0 });
    expect(await fileText(s, 'starts.txt')).toBe(`0\n${saved}\n`);
    expect(await fileText(s, 'result.txt')).toBe(`${saved + 50}\n`);
    expect(await fileText(s, 'boinc_finish_called')).toBe('0\n');
    expect(again.control.status.fractionDone).toBe(1);
  });

  it('immediateFinish: the app exits with its final status still unread in the channel, and the client reads it after the exit (fraction 1, the final CPU time)', async () => {
    const s = await slot();
    // No client polls while it runs: only the read after the exit (handle_exited_app) can see the status.
    const r = await startTs(s, ['--target', '30', '--step-ms', '1', '--immediate-finish'], { heartbeats: false });
    expect(await r.exited).toMatchObject({ code: 0 });
    expect(await fileText(s, 'boinc_finish_called')).toBe('0\n');
    const ch = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
    try {
      expect(ch.hasMsg(Channel.APP_STATUS)).toBe(true);
    } finally {
      ch.close();
    }
    await r.control.poll(performance.now(), { wss: 0, maxWss: 2e9 });
    expect(r.control.status.fractionDone).toBe(1);
    expect(r.control.status.currentCpuTime).toBeGreaterThan(0);
  });

  it('abort ends it with 194; quit while suspended ends it at once (the real API would sleep until killed)', async () => {
    const s1 = await slot();
    const s2 = await slot();
    const [a, q] = await Promise.all([startTs(s1, ['--target', '100000000']), startTs(s2, ['--target', '100000000'])]);
    await a.waitFor('first status', () => a.control.status.receivedAt !== undefined);
    await q.waitFor('first status', () => q.control.status.receivedAt !== undefined);
    a.control.abort();
    expect(a.control.state).toBe(ProcessState.ABORT_PENDING);
    q.control.suspend();
    await sleep(300);
    q.control.quit();
    expect(await a.exited).toMatchObject({ code: 194 });
    expect(await q.exited).toMatchObject({ code: 0 });
  });

  it('writes the same boinc_finish_called and boinc_temporary_exit bytes as the real library', async () => {
    const [c1, c2, t1, t2] = await Promise.all([slot(), slot(), slot(), slot()]);
    const finishArgs = ['--target', '20', '--step-ms', '1', '--exit-status', '3', '--message', 'all done', '--notice'];
    const tempArgs = ['--temporary-exit', '77', '--message', 'waiting for VM'];
    const all = await Promise.all([startC(c1, finishArgs), startC(c2, tempArgs), startTs(t1, finishArgs), startTs(t2, tempArgs)]);
    const exits = await Promise.all(all.map((r) => r.exited));
    expect(exits.map((e) => e.code)).toEqual([3, 0, 3, 0]);
    expect(await fileText(t1, 'boinc_finish_called')).toBe(await fileText(c1, 'boinc_finish_called'));
    expect(await fileText(t2, 'boinc_temporary_exit')).toBe(await fileText(c2, 'boinc_temporary_exit'));
    expect(await fileText(t2, 'boinc_temporary_exit')).toBe('77\nwaiting for VM\n');
  });

  it('sends app_status in the real API\'s exact format', async () => {
    const [cs, ts] = await Promise.all([slot(), slot()]);
    // Nobody polls: the first status message stays in the channel to be looked at.
    const [c, t] = await Promise.all([
      startC(cs, ['--target', '100000000', '--step-ms', '2', '--want-network'], { heartbeats: false }),
      startTs(ts, ['--target', '100000000', '--step-ms', '2', '--want-network'], { heartbeats: false }),
    ]);
    const peek = (s: string) => {
      const ch = MmapChannels.open(path.join(s, MMAP_FILE_NAME));
      try {
        return ch.peekMsg(Channel.APP_STATUS);
      } finally {
        ch.close();
      }
    };
    await c.waitFor('C status', () => peek(cs) !== undefined);
    await t.waitFor('TS status', () => peek(ts) !== undefined);
    const shape = (text: string) => text.replace(/\d\.\d{6}e[+-]\d{2}/g, 'N');
    expect(shape(peek(ts)!)).toBe(shape(peek(cs)!));
    expect(shape(peek(ts)!)).toBe('<current_cpu_time>N</current_cpu_time>\n<checkpoint_cpu_time>N</checkpoint_cpu_time>\n<want_network>1</want_network>\n<fraction_done>N</fraction_done>\n');
  });
});

describe('BoincApp in this process', () => {
  it('honours a slot lock held by the real library: 600 s temporary exit with the API\'s reason', async () => {
    const s = await slot();
    const holder = spawn(probe, ['lock', 'hold'], { cwd: s, stdio: ['pipe', 'pipe', 'inherit'] });
    await new Promise((r) => holder.stdout!.once('data', r));
    const lines: string[] = [];
    const code = await new Promise<number>((resolve) => {
      void BoincApp.init({ slotDir: s, exit: resolve, lockWaitMs: 200, log: (l) => lines.push(l) });
    });
    holder.stdin!.end();
    expect(code).toBe(0);
    expect(await fileText(s, 'boinc_temporary_exit')).toBe(`600\n${LOCK_BUSY_REASON}\n`);
    expect(LOCK_BUSY_REASON).toBe('Waiting to acquire slot directory lock.  Another instance may be running.');
    expect(lines.join('\n')).toContain("Can't acquire lockfile");
  });

  it('holds the lock against the real library, reads heartbeats, fires events, rereads init data and reports to the client', async () => {
    const s = await slot();
    const app = await BoincApp.init({ slotDir: s, exit: () => undefined });
    try {
      expect(Number((await run(probe, ['lock'], { cwd: s })).stdout.trim())).not.toBe(0);
      expect(app.checkpointPeriod).toBe(1);
      const control = await openClientControl(s);
      const seen: string[] = [];
      for (const ev of ['suspend', 'resume', 'quit', 'abort', 'reread_app_info'] as const) app.on(ev, () => seen.push(ev));
      app.fractionDone(0.5);
      app.setCpuTimeSource(() => 40);
      app.setOtherPid(4242);
      app.checkpointCompleted();
      const actions: ControlAction[] = [];
      const poll = async () => actions.push(...await control.poll(performance.now(), { wss: 5e6, maxWss: 8e9 }));
      // Poll (faster than the lifecycle's 1 s) until the app's once-a-second status has arrived.
      await until('first status', async () => (await poll(), control.status.currentCpuTime === 40));
      expect(app.heartbeat).toMatchObject({ wss: 5e6, maxWss: 8e9, networkSuspended: false });
      expect(control.status).toMatchObject({ currentCpuTime: 40, checkpointCpuTime: 40, fractionDone: 0.5, otherPids: [4242] });
      expect(actions).toContainEqual(expect.objectContaining({ kind: 'checkpoint', checkpointCpuTime: 40 }));

      control.suspend();
      await until('suspend', () => app.suspended);
      control.resume();
      await until('resume', () => !app.suspended);
      await writeInitData(s, { projectDir: s, boincDir: s, wuName: 'w', resultName: 'r', slot: 0, clientPid: process.pid, checkpointPeriod: 42 });
      control.rereadAppInfo();
      await until('reread', () => seen.includes('reread_app_info'));
      control.quit(); // with a listener, quit is the manager's to carry out
      await until('quit event', () => seen.includes('quit'));
      control.abort();
      await until('abort event', () => seen.includes('abort'));
      expect(seen).toEqual(['suspend', 'resume', 'reread_app_info', 'quit', 'abort']);
      expect(app.checkpointPeriod).toBe(42);
      await control.close();
    } finally {
      await app.detach();
    }
    expect(await exists(s, 'boinc_lockfile')).toBe(false);
    expect((await run(probe, ['lock'], { cwd: s })).stdout.trim()).toBe('0');
  });

  it('runs standalone without init_data.xml, as the API does', async () => {
    const s = await slot();
    await fsp.rm(path.join(s, 'init_data.xml'));
    const app = await BoincApp.init({ slotDir: s, exit: () => undefined, log: () => undefined });
    expect(app.standalone).toBe(true);
    expect(() => app.initData).toThrow(expect.objectContaining({ code: 'IPC_STANDALONE' }));
    expect(app.checkpointPeriod).toBe(0);
    await app.detach();
  });
});

describeLiveness('client liveness in BoincApp (started before the other tests)', () => liveness);
