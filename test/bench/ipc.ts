import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { TaskRun, buildWorker, makeSlot, sleep, tsWorkerCommand } from '../ipc-helpers.js';
import { installAltPlatform, makeReply, tempDataDir, writeReply } from '../lifecycle-helpers.js';
import { printLine, type BenchSection } from './harness.js';

/**
 * Latency from a suspend (or resume) request on our client side to the application acting on it.
 * The clock starts at ClientControl.suspend(), which `altplat task suspend` reaches through the
 * running client's control socket; that hop is not included here.
 * Baseline: BOINC's client task poll, TASK_POLL_PERIOD = 1 s (client/client_state.h), the period at
 * which the client looks at a task at all; it is a constant, not measured.
 */
const REPS = 5;
const BOINC_POLL_MS = 1000;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function measure(kind: 'c' | 'ts'): Promise<{ suspend: number[]; resume: number[] }> {
  const slot = await makeSlot();
  const args = ['--target', '1000000000', '--step-ms', '1'];
  const [cmd, pre] = kind === 'c' ? [await buildWorker(), [] as string[]] : tsWorkerCommand();
  const run = await TaskRun.start(slot, cmd, [...pre, ...args], { pollMs: BOINC_POLL_MS });
  const out = { suspend: [] as number[], resume: [] as number[] };
  try {
    await run.waitFor('first status', () => run.control.status.receivedAt !== undefined, 30_000);
    for (let i = 0; i < REPS; i++) {
      await sleep(300 + Math.random() * 300); // a request lands anywhere in the app's 0.1 s tick
      const before = (await run.progress()).count;
      let t0 = Date.now();
      run.control.suspend();
      await sleep(1500);
      const stopped = await run.progress();
      // C: the last step finished after the request; TS: the 'suspend' event's own time stamp.
      out.suspend.push(kind === 'c' ? Math.max(0, stopped.ms - t0) : await eventAfter(slot, 'suspend', t0));
      if (stopped.count === before) throw new Error('no progress before suspend; machine too busy');
      t0 = Date.now();
      run.control.resume();
      await run.waitFor('progress after resume', async () => (await run.progress()).count > stopped.count, 5000);
      out.resume.push(kind === 'c' ? (await firstStepAfter(run, stopped.count)) - t0 : await eventAfter(slot, 'resume', t0));
    }
  } finally {
    await run.kill();
    await fsp.rm(slot, { recursive: true, force: true });
  }
  return out;
}

async function eventAfter(slot: string, ev: string, t0: number): Promise<number> {
  const lines = (await fsp.readFile(path.join(slot, 'events.txt'), 'utf8')).trim().split('\n');
  const at = lines.map((l) => l.split(' ')).filter(([e, ms]) => e === ev && Number(ms) >= t0 - 5).map(([, ms]) => Number(ms));
  if (at.length === 0) throw new Error(`no ${ev} event after the request`);
  return at[0] - t0;
}

/** Wall time of the first step after `count`: progress.txt holds the latest, so step back by the step rate. */
async function firstStepAfter(run: TaskRun, count: number): Promise<number> {
  const a = await run.progress();
  await sleep(100);
  const b = await run.progress();
  const msPerStep = b.count > a.count ? (b.ms - a.ms) / (b.count - a.count) : 1;
  return a.ms - (a.count - count - 1) * msPerStep;
}

/**
 * The whole path a volunteer's command takes: `altplat task suspend RESULT` (a new CLI process) →
 * the control socket of a running `altplat run` → ClientControl → boinc_mmap_file → the app's
 * 'suspend' event. The app is the TypeScript worker (BoincApp) installed as an alt platform's manager.
 */
async function measureThroughCli(): Promise<{ suspend: number[]; resume: number[] }> {
  const cli = path.resolve('dist/src/cli/main.js');
  const worker = path.resolve('dist/test/ipc-worker.js');
  const dataDir = await tempDataDir('altplat-bench-task-');
  const launcher = path.join(dataDir, 'worker.sh');
  await fsp.writeFile(launcher, `#!/bin/sh\nexec "${process.execPath}" "${worker}" --target 1000000000 --step-ms 1\n`, { mode: 0o755 });
  await installAltPlatform(dataDir, { name: 'x86_64-pc-linux-gnu', manager: launcher });
  const { replyFile, filesDir } = await writeReply(dataDir, makeReply({
    platform: 'x86_64-pc-linux-gnu', mainProgram: Buffer.from('#!/bin/sh\n'), results: [{ name: 'bench_task', input: 'x' }],
  }));
  const runner = spawn(process.execPath, [cli, 'run', '--data-dir', dataDir, '--host-platform', 'windows_x86_64', '--files', filesDir, replyFile],
    { stdio: 'ignore' });
  const events = path.join(dataDir, 'slots', '0', 'events.txt');
  const task = (op: string) => new Promise<void>((resolve, reject) => {
    spawn(process.execPath, [cli, 'task', '--data-dir', dataDir, op, 'bench_task'], { stdio: 'ignore' })
      .on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`altplat task ${op} exited ${code}`))));
  });
  const seen = async (ev: string, t0: number): Promise<number> => {
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await sleep(5)) {
      const text = await fsp.readFile(events, 'utf8').catch(() => '');
      const hit = text.split('\n').map((l) => l.split(' ')).find(([e, ms]) => e === ev && Number(ms) >= t0);
      if (hit) return Number(hit[1]) - t0;
    }
    throw new Error(`the app never saw ${ev}`);
  };
  const out = { suspend: [] as number[], resume: [] as number[] };
  try {
    for (const deadline = Date.now() + 30_000; ; await sleep(50)) {
      if (await fsp.stat(path.join(dataDir, 'slots', '0', 'progress.txt')).catch(() => undefined)) break;
      if (Date.now() > deadline) throw new Error('the task did not start');
    }
    for (let i = 0; i < REPS; i++) {
      let t0 = Date.now();
      await task('suspend');
      out.suspend.push(await seen('suspend', t0));
      await sleep(200);
      t0 = Date.now();
      await task('resume');
      out.resume.push(await seen('resume', t0));
      await sleep(200);
    }
    await task('abort');
    await new Promise((resolve) => runner.on('exit', resolve));
  } finally {
    runner.kill('SIGKILL');
    await fsp.rm(dataDir, { recursive: true, force: true });
  }
  return out;
}

export const sections: BenchSection[] = [
  {
    title: `suspend/resume latency, from ClientControl.suspend()/resume() to the app (median of ${REPS})`,
    run: async () => {
      for (const [kind, label] of [['c', 'real libboinc-api app (C)'], ['ts', 'TypeScript app side (BoincApp)']] as const) {
        const r = await measure(kind);
        const note = kind === 'c' ? 'until its work stops / restarts' : "until its 'suspend'/'resume' event";
        printLine({ name: `suspend, ${label}`, value: median(r.suspend), baseline: BOINC_POLL_MS, goal: '<= 0.3x', note: `${note}; samples ${r.suspend.map((x) => x.toFixed(0)).join(',')}` });
        printLine({ name: `resume, ${label}`, value: median(r.resume), baseline: BOINC_POLL_MS, note: `samples ${r.resume.map((x) => x.toFixed(0)).join(',')}` });
      }
      console.log(`   baseline = BOINC's TASK_POLL_PERIOD (${BOINC_POLL_MS} ms, a constant); clock starts at ClientControl.suspend()/resume() (the hop from 'altplat task' to the running client is not included)`);
    },
  },
  {
    title: `suspend/resume latency through the CLI: \`altplat task\` → running \`altplat run\` → app (median of ${REPS})`,
    run: async () => {
      const r = await measureThroughCli();
      for (const op of ['suspend', 'resume'] as const) {
        printLine({ name: `altplat task ${op} → TypeScript app's event`, value: median(r[op]), baseline: BOINC_POLL_MS,
          note: `includes starting the CLI process (node); samples ${r[op].map((x) => x.toFixed(0)).join(',')}` });
      }
    },
  },
];
