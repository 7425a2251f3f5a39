import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { Patience, patientTimeout, watchForStarvation } from '../src/manager/patience.js';

// Real processes and the real scheduler: a busy loop at nice 19 beside busy loops at nice 0 on every
// core is starved as QEMU is on a volunteer's busy host; a sleeping process is not.
const children: ChildProcess[] = [];
const busy = (nice: number): ChildProcess => {
  const c = spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' });
  os.setPriority(c.pid!, nice);
  children.push(c);
  return c;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
afterEach(() => { for (const c of children.splice(0)) c.kill('SIGKILL'); });

const schedstat = existsSync(`/proc/${process.pid}/task/${process.pid}/schedstat`);

describe.runIf(schedstat)('timeouts that count only the time a VM could run', () => {
  it('a nice-19 process beside nice-0 busy loops on every core: its timeout waits; once the host is free it expires', async () => {
    const victim = busy(19);
    const unwatch = watchForStarvation(victim.pid!);
    for (let i = 0; i < os.cpus().length + 1; i++) busy(0);
    await sleep(100);
    const p = new Patience(1000);
    let firedAt: number | undefined;
    patientTimeout(1000, () => { firedAt = p.wallMs(); });
    await sleep(2500);
    const wall = p.wallMs();
    const counted = p.countedMs();
    // At nice 19 against nice 0 it gets ~1.5 % of a core: nearly all its wall time was spent waiting.
    // (A thread's wait is booked when it next runs, so the figure lags by up to one scheduling gap.)
    expect(counted).toBeLessThan(wall * 0.5);
    expect(p.expired()).toBe(false);
    expect(firedAt).toBeUndefined();
    // The busy loops end and the victim gets a normal priority (other tests may be running beside this
    // one): it now runs, and the re-armed timeout fires soon after.
    for (const c of children.splice(1)) c.kill('SIGKILL');
    os.setPriority(victim.pid!, 0);
    const freedAt = p.wallMs();
    for (let i = 0; i < 40 && firedAt === undefined; i++) await sleep(100);
    unwatch();
    expect(firedAt).toBeDefined();
    expect(firedAt! - freedAt).toBeLessThan(4000);
  });

  it('a sleeping process is not starved: its timeout expires on the wall clock; a cancelled one never fires', async () => {
    const victim = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(victim);
    const unwatch = watchForStarvation(victim.pid!);
    const p = new Patience(300);
    await sleep(450);
    expect(p.countedMs()).toBeGreaterThan(300);
    expect(p.expired()).toBe(true);
    const t0 = performance.now();
    await new Promise<void>((r) => patientTimeout(200, r));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
    let fired = false;
    const cancel = patientTimeout(50, () => { fired = true; });
    cancel();
    await sleep(150);
    expect(fired).toBe(false);
    unwatch();
  });
});
