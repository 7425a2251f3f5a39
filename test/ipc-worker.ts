/**
 * The TypeScript twin of test/c/ipc_worker.c, built on BoincApp: same options, same files in the
 * slot, so the interop tests can run the same scenarios against both. It also appends
 * "<event> <wall ms>" to events.txt for every control event it gets (the bench reads it).
 */
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { BoincApp } from '../src/ipc/app.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const has = (name: string) => process.argv.includes(name);
const writeAtomic = (name: string, text: string) => {
  writeFileSync(`.${name}.tmp`, text);
  renameSync(`.${name}.tmp`, name);
};

const target = Number(arg('--target') ?? 200);
const stepMs = Number(arg('--step-ms') ?? 5);
const message = arg('--message');
const notice = has('--notice');

const app = await BoincApp.init({ immediateFinish: has('--immediate-finish') });
for (const ev of ['suspend', 'resume', 'reread_app_info'] as const) {
  app.on(ev, () => appendFileSync('events.txt', `${ev} ${Date.now()}\n`));
}
if (arg('--temporary-exit') !== undefined) {
  await app.temporaryExit(Number(arg('--temporary-exit')), message ?? '', notice);
}
if (has('--want-network')) app.needNetwork(true);

let count = 0;
try {
  count = Number.parseInt(readFileSync('checkpoint.txt', 'utf8'), 10) || 0;
} catch {
  // first run
}
appendFileSync('starts.txt', `${count}\n`);
let lastCheckpoint = Date.now();

// Work in small steps off the event loop's timers so control messages are seen between them,
// and stop stepping while suspended, as a manager pauses its VM.
await new Promise<void>((done) => {
  let paused = false;
  app.on('resume', () => {
    if (paused) {
      paused = false;
      setImmediate(step);
    }
  });
  const step = () => {
    if (count >= target) return done();
    if (app.suspended) {
      paused = true;
      return;
    }
    const until = performance.now() + stepMs;
    while (performance.now() < until) {
      // burn CPU
    }
    count++;
    writeAtomic('progress.txt', `${count} ${Date.now()}\n`);
    app.fractionDone(count / target);
    if (Date.now() - lastCheckpoint >= app.checkpointPeriod * 1000) {
      writeAtomic('checkpoint.txt', `${count}\n`);
      app.checkpointCompleted();
      lastCheckpoint = Date.now();
    }
    setImmediate(step);
  };
  step();
});
writeAtomic('result.txt', `${count}\n`);
await app.finish(Number(arg('--exit-status') ?? 0), message, notice);
