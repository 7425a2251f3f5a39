/**
 * Client liveness as the BOINC API checks it (api/boinc_api.cpp): client_pid gone → exit 0 within the
 * 10 s check; client_pid 0 and no heartbeat → exit 0 after 30 s; heartbeats keep it running. The real
 * library's app and BoincApp must behave the same, so both test files run these same checks. The runs
 * wait 10-35 s, so they start before the other tests and are checked last.
 */
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import type { InitData } from '../src/ipc/init-data.js';
import { deadPid, sleep, type Exit, type TaskRun } from './ipc-helpers.js';

type Run = { run: TaskRun; startedAt: number };
export type Liveness = { deadClient: Run; noHeartbeat: Run; heartbeats: Run };

export async function startLiveness(
  slot: (init: Partial<InitData>) => Promise<string>,
  start: (slot: string, args: string[], opts?: { heartbeats?: boolean }) => Promise<TaskRun>,
): Promise<Liveness> {
  const long = ['--target', '100000000', '--step-ms', '20'];
  const dead = await slot({ clientPid: await deadPid() });
  const silent = await slot({ clientPid: 0 });
  const fed = await slot({ clientPid: 0 });
  const deadClient = { run: await start(dead, long), startedAt: performance.now() };
  const noHeartbeat = { run: await start(silent, long, { heartbeats: false }), startedAt: performance.now() };
  const heartbeats = { run: await start(fed, long), startedAt: performance.now() };
  return { deadClient, noHeartbeat, heartbeats };
}

export function describeLiveness(title: string, liveness: () => Liveness): void {
  describe(title, () => {
    const ended = async (name: keyof Liveness, withinMs: number): Promise<Exit & { after: number }> => {
      const { run: r, startedAt } = liveness()[name];
      const e = await Promise.race([r.exited, sleep(withinMs).then(() => undefined)]);
      if (!e) throw new Error(`${name}: still running after ${withinMs} ms`);
      return { ...e, after: e.at - startedAt };
    };

    it('client_pid gone: exits 0 within the 10 s check', async () => {
      const e = await ended('deadClient', 30_000);
      expect(e).toMatchObject({ code: 0 });
      expect(e.after).toBeLessThan(20_000);
      expect(await liveness().deadClient.run.stderr()).toContain('BOINC client no longer exists - exiting');
    });

    it('client_pid 0 and no heartbeat: exits 0 after 30 s; with heartbeats it keeps running', async () => {
      const e = await ended('noHeartbeat', 60_000);
      expect(e).toMatchObject({ code: 0 });
      expect(e.after).toBeGreaterThanOrEqual(29_000);
      expect(await liveness().noHeartbeat.run.stderr()).toContain('No heartbeat from client for 30 sec - exiting');
      const fed = liveness().heartbeats;
      await sleep(Math.max(0, fed.startedAt + 33_000 - performance.now()));
      expect(fed.run.running).toBe(true);
      fed.run.control.quit();
      expect(await fed.run.exited).toMatchObject({ code: 0 });
    });
  });
}
