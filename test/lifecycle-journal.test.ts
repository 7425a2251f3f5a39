import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSchedulerReply } from '../src/scheduler/reply.js';
import { Journal } from '../src/tasks/journal.js';
import { AltplatClient } from '../src/tasks/client.js';
import { makeReply, tempDataDir } from './lifecycle-helpers.js';

const assignment = parseSchedulerReply(
  makeReply({ platform: 'x86_64-pc-linux-gnu', mainProgram: Buffer.from('x'), results: [{ name: 'j1', input: 'x' }] }).xml,
  { host: ['x86_64-pc-linux-gnu'], alt: [] },
).assignments[0];
const init = { resultName: 'j1', masterUrl: assignment.masterUrl, assignment, step: 'assigned' as const, prematureExits: 0, restarts: 0, checkpointCpuTime: 0, fractionDone: 0, elapsed: 0 };

describe('task journal (<dataDir>/altplat/tasks.json)', () => {
  it('persists every update atomically and reads it back', async () => {
    const dir = path.join(await tempDataDir(), 'altplat');
    const j = await Journal.open(dir);
    await j.update(init, {}, init);
    await Promise.all([j.update(init, { slot: 3 }), j.update(init, { step: 'slot_chosen' })]); // serialised
    const again = await Journal.open(dir);
    expect(again.get(init.masterUrl, 'j1')).toMatchObject({ slot: 3, step: 'slot_chosen', assignment: { result: { name: 'j1' } } });
    expect(again.unfinished().map((t) => t.resultName)).toEqual(['j1']);
    expect((await fsp.readdir(dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await expect(again.update({ masterUrl: init.masterUrl, resultName: 'nope' }, { step: 'done' })).rejects.toMatchObject({ code: 'JOURNAL_NO_TASK' });
  });

  it('a damaged or unknown journal is refused with a named error and left as it is', async () => {
    const dataDir = await tempDataDir();
    const file = path.join(dataDir, 'altplat', 'tasks.json');
    await fsp.mkdir(path.dirname(file));
    await fsp.writeFile(file, '{"version": 1, "tasks": [');
    await expect(Journal.open(path.dirname(file))).rejects.toMatchObject({ code: 'JOURNAL_CORRUPT' });
    await expect(AltplatClient.open({ dataDir, hostPlatforms: ['x'] })).rejects.toMatchObject({ code: 'JOURNAL_CORRUPT' });
    expect(await fsp.readFile(file, 'utf8')).toBe('{"version": 1, "tasks": [');
    await fsp.writeFile(file, '{"version": 99, "tasks": []}');
    await expect(Journal.open(path.dirname(file))).rejects.toMatchObject({ code: 'JOURNAL_VERSION' });
  });
});
