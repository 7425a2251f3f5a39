/**
 * A small TypeScript BOINC client embedding altplat, using only the package's public exports.
 * It owns the scheduling: two CPUs, the tasks of one scheduler reply; one task is aborted while still
 * queued, every task is suspended and resumed once, one is preempted by quit() and started again
 * later (it resumes from its checkpoint). It prints each task's outcome.
 *
 *   node dist/client.js DATA_DIR REPLY.xml MASTER_URL
 *
 * The reply's input files must already be in the project dir (a real client downloads them first).
 */
import { readFile } from 'node:fs/promises';
import { AltplatClient, isAltplatError, type AltTask } from 'altplat';

const CPUS = 2;
const [dataDir, replyFile, masterUrl] = process.argv.slice(2);
if (!dataDir || !replyFile || !masterUrl) {
  console.error('usage: client DATA_DIR REPLY.xml MASTER_URL');
  process.exit(2);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 600 && !ok(); i++) await sleep(50);
  if (!ok()) throw new Error(`timed out waiting for ${what}`);
}

const client = await AltplatClient.open({ dataDir, controlSocket: false });
try {
  client.on('state', (e) => console.log(`  [state] ${e.task}: ${e.state} (${e.step})`));
  await client.discover();
  const { tasks, rejected } = await client.accept(await readFile(replyFile), { masterUrl });
  for (const r of rejected) console.log(`${r.name}: rejected [${r.code}] ${r.reason}`);
  const [first, second, third] = tasks;
  if (!first || !second || !third) throw new Error(`the example needs a reply with three results, got ${tasks.length}`);

  // Our scheduler: the queue in reply order; at most CPUS tasks run.
  const queue: AltTask[] = [...tasks];
  const running = new Set<AltTask>();
  const schedule = async () => {
    while (running.size < CPUS && queue.length > 0) {
      const t = queue.shift()!;
      if (t.state === 'finished') continue;
      running.add(t);
      void t.result.then(() => running.delete(t));
      await t.start();
    }
  };

  // The volunteer aborts the third task before it ever runs: it ends 'aborted' (203), never started.
  await third.abort();
  await schedule();

  // Everything is suspended and resumed once (BOINC's rule: a task that has checkpointed is removed
  // from memory and restarted from its checkpoint; one that has not stays in memory).
  await until('a first checkpoint', () => first.fractionDone > 0 && second.fractionDone > 0);
  await Promise.all(tasks.map((t) => t.suspend()));
  await Promise.all(tasks.map((t) => t.resume()));

  // Preempt the second task (say, a task with an earlier deadline came in): quit keeps its slot and
  // checkpoint; it is started again once the first one is done.
  await until('progress after resume', () => second.fractionDone > 0);
  await second.quit();
  running.delete(second);
  queue.push(second);
  console.log(`${second.name}: preempted (${second.state})`);
  await first.result;
  await schedule();

  for (const t of tasks) {
    const r = await t.result;
    console.log(`${r.name}: ${r.outcome}, exit status ${r.exitStatus}, ${r.restarts} restart(s), ${r.elapsed.toFixed(1)} s`);
  }
} catch (e) {
  console.error(isAltplatError(e) ? `error [${e.code}]: ${e.message}` : e);
  process.exitCode = 1;
} finally {
  await client.close();
}
