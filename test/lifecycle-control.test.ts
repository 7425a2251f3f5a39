/*
 * The embedding API with a real BOINC application (test/c/lifecycle_app.c, linked with Debian's
 * libboinc-api), run natively: every control call on queued, running, suspended and quit tasks, and
 * the outcome the BOINC client gives for it (client/app.cpp, app_control.cpp, cpu_sched.cpp).
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AltplatClient, type AltTask, type StateEvent, type SlotAllocator } from '../src/index.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { exists, fastClock, makeReply, MASTER_URL, PROJECT, tempDataDir, treeStamp, type ResultSpec } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
let app: string;
beforeAll(async () => {
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** A data dir whose project dir already holds the reply's files (the embedding client downloaded them). */
async function setup(results: ResultSpec[], dataDir?: string) {
  const d = dataDir ?? await tempDataDir('altplat-api-');
  const reply = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(app), results });
  const proj = path.join(d, 'projects', PROJECT);
  await fsp.mkdir(proj, { recursive: true });
  for (const [n, b] of Object.entries(reply.files)) await fsp.writeFile(path.join(proj, n), b, { mode: 0o755 });
  return { dataDir: d, xml: reply.xml, proj };
}

async function openClient(dataDir: string, extra: Partial<Parameters<typeof AltplatClient.open>[0]> = {}) {
  const client = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX], pollMs: 50, ...extra });
  await client.discover();
  return client;
}

async function accept(client: AltplatClient, xml: string): Promise<Record<string, AltTask>> {
  const { tasks, rejected } = await client.accept(xml, { masterUrl: MASTER_URL });
  expect(rejected).toEqual([]);
  return Object.fromEntries(tasks.map((t) => [t.name, t]));
}

const stderrOf = (dataDir: string, t: AltTask) => fsp.readFile(path.join(dataDir, 'slots', String(t.slot), 'stderr.txt'), 'utf8').catch(() => '');
const pidsOf = async (dataDir: string, t: AltTask) => [...(await stderrOf(dataDir, t)).matchAll(/lifecycle_app: pid (\d+)/g)].map((m) => Number(m[1]));
const alive = (pid: number) => { try { process.kill(pid, 0); return true; } catch { return false; } };
const output = (proj: string, name: string) => fsp.readFile(path.join(proj, `${name}_out`), 'utf8');
/** Checkpointed = the client has seen a status message with a checkpoint (fraction_done comes with it). */
const checkpointed = (t: AltTask) => until(`${t.name} to checkpoint`, () => t.fractionDone > 0);

describe('queued tasks', () => {
  it('abort: ends aborted with 203 without ever starting; result settles once; start() afterwards does nothing', async () => {
    const s = await setup([{ name: 'q1', input: 'success 3' }]);
    const client = await openClient(s.dataDir);
    const { q1 } = await accept(client, s.xml);
    expect([q1.state, q1.step, q1.kind]).toEqual(['queued', 'assigned', 'native']);
    const reports: string[] = [];
    client.on('report', (r) => reports.push(`${r.name}:${r.outcome}:${r.masterUrl}`));
    await q1.abort();
    const r = await q1.result;
    expect(r).toMatchObject({ outcome: 'aborted', exitStatus: 203, reason: 'aborted by user', slot: null, restarts: 0 });
    expect(q1.state).toBe('finished');
    await q1.start();
    await q1.abort();
    expect(reports).toEqual([`q1:aborted:${MASTER_URL}`]);
    expect(await exists(path.join(s.dataDir, 'slots', '0'))).toBe(false);
    await client.close();
  });

  it('suspend before launch: start() does not launch it, also after a client restart; resume, then start runs it', async () => {
    const s = await setup([{ name: 'q2', input: 'success 2' }]);
    let client = await openClient(s.dataDir);
    const { q2 } = await accept(client, s.xml);
    await q2.suspend();
    await q2.start();
    expect([q2.state, q2.step]).toEqual(['suspended', 'assigned']);
    await client.close();
    client = await AltplatClient.open({ dataDir: s.dataDir, hostPlatforms: [LINUX], pollMs: 50 }); // no discover(): listed at once
    const again = client.task('q2')!;
    expect(again.state).toBe('suspended');
    await again.start();
    expect(again.step).toBe('assigned');
    await again.resume();
    expect(again.state).toBe('queued');
    await client.discover();
    await again.start();
    expect(await again.result).toMatchObject({ outcome: 'success', restarts: 0 });
    expect(await output(s.proj, 'q2')).toBe('done 2 steps in 1 runs\n');
    await client.close();
  });
});

describe('running tasks', () => {
  it('suspend after a checkpoint removes it from memory (leave_apps_in_memory 0); resume restarts it from the checkpoint', async () => {
    const s = await setup([{ name: 'r1', input: 'success 60' }]);
    const client = await openClient(s.dataDir);
    const { r1 } = await accept(client, s.xml);
    await r1.start();
    expect(r1.state).toBe('running');
    await checkpointed(r1);
    const [pid1] = await pidsOf(s.dataDir, r1);
    await r1.suspend();
    expect(r1.state).toBe('suspended');
    expect(alive(pid1!)).toBe(false); // quit: BOINC's "Preempting (removed from memory)"
    expect(await exists(path.join(s.dataDir, 'slots', String(r1.slot), 'ckpt'))).toBe(true); // the slot is kept
    await r1.resume();
    expect(r1.state).toBe('running');
    const report = await r1.result;
    expect(report).toMatchObject({ outcome: 'success', restarts: 1 });
    const pids = [...report.stderr.matchAll(/lifecycle_app: pid (\d+)/g)].map((m) => Number(m[1]));
    expect(pids).toHaveLength(2); // a new process after resume, as the real client does (2 starts)
    expect(pids[1]).not.toBe(pids[0]);
    expect(await output(s.proj, 'r1')).toBe('done 60 steps in 2 runs\n');
    await client.close();
  });

  it('suspend before the first checkpoint keeps it in memory; resume continues the same process', async () => {
    const s = await setup([{ name: 'r2', input: 'wait_go 2' }]);
    const client = await openClient(s.dataDir);
    const { r2 } = await accept(client, s.xml);
    await r2.start();
    const [pid] = await until('the app', () => pidsOf(s.dataDir, r2).then((p) => p.length > 0 && p));
    await r2.suspend();
    expect([r2.state, r2.processState]).toEqual(['suspended', 'SUSPENDED']);
    await sleep(300);
    expect(alive(pid!)).toBe(true); // "Preempting (left in memory)": it never checkpointed
    await r2.resume();
    expect(r2.state).toBe('running');
    await fsp.writeFile(path.join(s.dataDir, 'slots', String(r2.slot), 'go'), '');
    expect(await r2.result).toMatchObject({ outcome: 'success', restarts: 0 });
    expect(await output(s.proj, 'r2')).toBe('done 2 steps in 1 runs\n');
    await client.close();
  });

  it('suspend({ leaveInMemory: true }) keeps a checkpointed app in memory', async () => {
    const s = await setup([{ name: 'r3', input: 'success 40' }]);
    const client = await openClient(s.dataDir);
    const { r3 } = await accept(client, s.xml);
    await r3.start();
    await checkpointed(r3);
    const [pid] = await pidsOf(s.dataDir, r3);
    await r3.suspend({ leaveInMemory: true });
    await sleep(300);
    expect(alive(pid!)).toBe(true);
    await r3.resume();
    expect(await r3.result).toMatchObject({ outcome: 'success', restarts: 0 });
    expect(await output(s.proj, 'r3')).toBe('done 40 steps in 1 runs\n');
    await client.close();
  });

  it('quit preempts: only a state event, the slot is kept, start() resumes from the checkpoint', async () => {
    const s = await setup([{ name: 'r4', input: 'success 40' }]);
    const client = await openClient(s.dataDir);
    const { r4 } = await accept(client, s.xml);
    const events: StateEvent[] = [];
    let reports = 0;
    client.on('state', (e) => events.push(e));
    client.on('report', () => { reports++; });
    await r4.start();
    await checkpointed(r4);
    let settled = false;
    void r4.result.then(() => { settled = true; });
    await r4.quit();
    expect(r4.state).toBe('quit');
    expect(events.at(-1)).toMatchObject({ task: 'r4', masterUrl: MASTER_URL, state: 'quit', step: 'exited' });
    await sleep(50);
    expect([settled, reports]).toEqual([false, 0]);
    expect(await exists(path.join(s.dataDir, 'slots', String(r4.slot), 'ckpt'))).toBe(true);
    await r4.start();
    expect(await r4.result).toMatchObject({ outcome: 'success', restarts: 1 });
    expect(await output(s.proj, 'r4')).toBe('done 40 steps in 2 runs\n');
    expect(reports).toBe(1);
    await client.close();
  });

  it('abort of a running task ends it aborted with 203', async () => {
    const s = await setup([{ name: 'r5', input: 'success 100' }]);
    const client = await openClient(s.dataDir);
    const { r5 } = await accept(client, s.xml);
    await r5.start();
    await checkpointed(r5);
    await r5.abort();
    expect(await r5.result).toMatchObject({ outcome: 'aborted', exitStatus: 203, reason: 'aborted by user' });
    expect(await fsp.readdir(path.join(s.dataDir, 'slots'))).toEqual([]);
    await client.close();
  });
});

describe('suspended and quit tasks', () => {
  it('abort works on a task suspended in memory, on one removed by a suspend, and on a quit one', async () => {
    const s = await setup([{ name: 'a1', input: 'wait_go 2' }, { name: 'a2', input: 'success 60' }, { name: 'a3', input: 'success 60' }]);
    // The suspended libboinc app does not always act on <abort/> (its worker is parked): the client
    // then kills it after ABORT_TIMEOUT (60 s), as client/app_control.cpp abort_task does for a
    // suspended task too. The fast clock makes that 0.3 s; the processes are real.
    const client = await openClient(s.dataDir, { system: { clock: fastClock() } });
    const { a1, a2, a3 } = await accept(client, s.xml);
    await Promise.all([a1.start(), a2.start(), a3.start()]);
    await until('a1 running', () => pidsOf(s.dataDir, a1).then((p) => p.length > 0));
    await a1.suspend(); // in memory
    await checkpointed(a2);
    await a2.suspend(); // removed
    await checkpointed(a3);
    await a3.quit();
    expect([a1.state, a2.state, a3.state]).toEqual(['suspended', 'suspended', 'quit']);
    await Promise.all([a1.abort(), a2.abort(), a3.abort()]);
    for (const t of [a1, a2, a3]) expect(await t.result).toMatchObject({ outcome: 'aborted', exitStatus: 203 });
    expect(await fsp.readdir(path.join(s.dataDir, 'slots'))).toEqual([]);
    await client.close();
  });

  it('a task removed by a suspend and then quit stays quit after resume, until start()', async () => {
    const s = await setup([{ name: 'b1', input: 'success 40' }]);
    const client = await openClient(s.dataDir);
    const { b1 } = await accept(client, s.xml);
    await b1.start();
    await checkpointed(b1);
    await b1.suspend();
    await b1.quit();
    await b1.resume();
    expect(b1.state).toBe('quit');
    await sleep(200);
    expect(await pidsOf(s.dataDir, b1)).toHaveLength(1); // not launched by resume()
    await b1.start();
    expect(await b1.result).toMatchObject({ outcome: 'success', restarts: 1 });
    await client.close();
  });

  it('random sequences of calls end as BOINC ends them: aborted if an abort was among them, else success with the right output', async () => {
    let seed = 11;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
    const ops = ['start', 'suspend', 'resume', 'quit', 'abort', 'start', 'resume'] as const;
    const seqs = Array.from({ length: 6 }, () => Array.from({ length: 4 }, () => ops[rnd(ops.length)]!));
    const s = await setup(seqs.map((_, i) => ({ name: `z${i}`, input: 'success 12' })));
    const client = await openClient(s.dataDir);
    const tasks = await accept(client, s.xml);
    await Promise.all(seqs.map(async (seq, i) => {
      const t = tasks[`z${i}`]!;
      for (const op of seq) {
        await t[op]();
        await sleep(rnd(300));
      }
      // The client's scheduler then lets every task run to its end.
      await t.resume();
      await t.start();
      const r = await t.result;
      const want = seq.includes('abort') ? { outcome: 'aborted', exitStatus: 203 } : { outcome: 'success', exitStatus: 0 };
      expect(r, `${seq.join(' ')}: ${r.reason}`).toMatchObject(want);
      if (!seq.includes('abort')) expect(await output(s.proj, `z${i}`)).toMatch(/^done 12 steps in \d runs\n$/);
    }));
    expect(await fsp.readdir(path.join(s.dataDir, 'slots'))).toEqual([]);
    await client.close();
  });
});

describe('the client', () => {
  it('close() quits running tasks as the BOINC client does at exit; the next open() lists them and start() resumes from the checkpoint', async () => {
    const s = await setup([{ name: 'c1', input: 'success 40' }, { name: 'c2', input: 'success 1' }]);
    let client = await openClient(s.dataDir);
    const { c1 } = await accept(client, s.xml);
    await c1.start();
    await checkpointed(c1);
    await client.close();
    expect((await pidsOf(s.dataDir, c1)).filter(alive)).toEqual([]);
    await expect(client.accept(s.xml, { masterUrl: MASTER_URL })).rejects.toMatchObject({ code: 'CLIENT_CLOSED' });
    client = await AltplatClient.open({ dataDir: s.dataDir, hostPlatforms: [LINUX], pollMs: 50 });
    expect(client.tasks().map((t) => [t.name, t.state])).toEqual([['c1', 'quit'], ['c2', 'queued']]);
    const t = client.task('c1', MASTER_URL)!;
    await t.start();
    expect(await t.result).toMatchObject({ outcome: 'success', restarts: 1 });
    expect(await output(s.proj, 'c1')).toBe('done 40 steps in 2 runs\n');
    await client.close();
  });

  it('a second open() of an open data dir is refused with DATA_DIR_IN_USE, in this process and from another one', async () => {
    const dataDir = await tempDataDir('altplat-api-');
    const client = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX] });
    await expect(AltplatClient.open({ dataDir, hostPlatforms: [LINUX] })).rejects.toMatchObject({ code: 'DATA_DIR_IN_USE' });
    // Another process (the CLI) meets the fcntl lock on <data>/altplat/client.lock.
    const { runCli } = await import('./lifecycle-helpers.js');
    const other = await runCli(['run', '--data-dir', dataDir, '--host-platform', LINUX]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('DATA_DIR_IN_USE');
    await client.close();
    const again = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX] });
    await again.close();
  });

  it('a client holding its own slots/0 and slots/1 keeps them untouched through a run of three tasks', async () => {
    const s = await setup([{ name: 's1', input: 'success 2' }, { name: 's2', input: 'success 2' }, { name: 's3', input: 'success 2' }]);
    for (const n of ['0', '1']) {
      await fsp.mkdir(path.join(s.dataDir, 'slots', n, 'sub'), { recursive: true });
      await fsp.writeFile(path.join(s.dataDir, 'slots', n, 'checkpoint.dat'), `the client's own checkpoint ${n}\n`);
      await fsp.writeFile(path.join(s.dataDir, 'slots', n, 'sub', 'state'), 'x');
    }
    const before = await treeStamp(path.join(s.dataDir, 'slots'));
    const client = await openClient(s.dataDir);
    const tasks = Object.values(await accept(client, s.xml));
    await Promise.all(tasks.map((t) => t.start()));
    const reports = await Promise.all(tasks.map((t) => t.result));
    expect(reports.map((r) => [r.outcome, r.slot])).toEqual([['success', 2], ['success', 3], ['success', 4]]);
    expect(await treeStamp(path.join(s.dataDir, 'slots'))).toEqual(before);
    expect((await fsp.readdir(path.join(s.dataDir, 'slots'))).sort()).toEqual(['0', '1']);
    await client.close();
  });

  it('an embedder\'s own SlotAllocator hands out the slots; altplat empties a slot it was given and gives it back', async () => {
    const s = await setup([{ name: 'e1', input: 'success 1' }, { name: 'e2', input: 'success 1' }]);
    const given: number[] = [];
    const back: number[] = [];
    const slots: SlotAllocator = {
      acquire: async () => { const n = 7 + given.length; given.push(n); await fsp.mkdir(path.join(s.dataDir, 'slots', String(n)), { recursive: true }); return n; },
      release: (n) => { back.push(n); },
    };
    const client = await openClient(s.dataDir, { slots });
    const tasks = await accept(client, s.xml);
    await tasks.e1!.start();
    const r1 = await tasks.e1!.result;
    expect(back).toEqual([7]); // released before result settled
    await tasks.e2!.start();
    await tasks.e2!.result;
    expect([r1.slot, given, back]).toEqual([7, [7, 8], [7, 8]]);
    expect(await fsp.readdir(path.join(s.dataDir, 'slots', '7'))).toEqual([]); // emptied; the folder is the client's
    await client.close();
  });

  it('tasks are keyed by (project, name): a name two projects share needs the project', async () => {
    const s = await setup([{ name: 'dup', input: 'success 1' }]);
    const client = await openClient(s.dataDir);
    await accept(client, s.xml);
    const other = 'https://other.example.net/proj/';
    const otherDir = path.join(s.dataDir, 'projects', 'other.example.net_proj');
    await fsp.cp(s.proj, otherDir, { recursive: true });
    const { tasks } = await client.accept(s.xml.replace(`<master_url>${MASTER_URL}</master_url>`, `<master_url>${other}</master_url>`), { masterUrl: other });
    expect(tasks.map((t) => t.masterUrl)).toEqual([other]);
    expect(() => client.task('dup')).toThrow(expect.objectContaining({ code: 'TASK_AMBIGUOUS' }));
    expect(client.task('dup', other)).toBe(tasks[0]);
    expect(client.task('dup', MASTER_URL)!.masterUrl).toBe(MASTER_URL);
    await client.close();
  });
});
