/*
 * Issue 9 item 4: cost proportional to what the results use. A reply listing thousands of file_infos no
 * result uses: they are checked (a bad name is still listed) but never staged or read further. (Speed
 * and memory figures are in `npm run bench -- reply`, never asserted here.)
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseSchedulerReply } from '../src/scheduler/reply.js';
import { inputFilesUsed } from '../src/scheduler/reply.js';
import { makeReply, PROJECT, runCli, writeReply } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
const UNUSED = 3000;
const temps: string[] = [];
afterAll(async () => {
  for (const t of temps) await fsp.rm(t, { recursive: true, force: true });
});

function paddedReply() {
  const base = makeReply({ platform: LINUX, mainProgram: readFileSync('fixtures/hostile/files/h_app'), results: [{ name: 'used', input: 'used input\n' }] });
  const pad: string[] = [];
  for (let i = 0; i < UNUSED; i++) pad.push(`<file_info>\n    <name>unused_${i}</name>\n    <nbytes>2</nbytes>\n</file_info>\n`);
  pad.push('<file_info>\n    <name>bad%name</name>\n</file_info>\n');
  const close = base.xml.lastIndexOf('</scheduler_reply>');
  const files = { ...base.files };
  for (let i = 0; i < UNUSED; i++) files[`unused_${i}`] = Buffer.from('u\n');
  return { xml: base.xml.slice(0, close) + pad.join('') + base.xml.slice(close), files };
}

describe('a reply with thousands of unused file_infos', () => {
  it('parses to the used files only; every file_info is still listed on request and a bad one is rejected', () => {
    const r = parseSchedulerReply(paddedReply().xml, { host: [LINUX], alt: [] });
    expect(r.assignments).toHaveLength(1);
    expect(inputFilesUsed(r).map((f) => f.name).sort()).toEqual(['lc_app_100', 'used_in']);
    expect(r.rejections).toEqual([expect.objectContaining({ element: 'file_info', name: 'bad%name', code: 'REPLY_BAD_FILENAME' })]);
    expect(r.fileInfos).toHaveLength(UNUSED + 3); // the API's full list, read when asked
  });

  it('run --files stages only what the results use', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-scale-'));
    temps.push(dir);
    const dataDir = path.join(dir, 'data');
    await fsp.mkdir(dataDir);
    const { replyFile, filesDir } = await writeReply(path.join(dir, 'in'), paddedReply());
    const run = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', filesDir, replyFile]);
    expect(JSON.parse(run.stdout).results).toEqual([expect.objectContaining({ name: 'used', outcome: 'success' })]);
    expect((await fsp.readdir(path.join(dataDir, 'projects', PROJECT))).sort()).toEqual(['lc_app_100', 'used_in', 'used_out']);
  }, 60_000);
});
