import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { XMLParser } from 'fast-xml-parser';
import { MAX_REPLY_BYTES, parseSchedulerReply } from '../../src/scheduler/reply.js';
import { makeReply, tempDataDir, writeReply } from '../lifecycle-helpers.js';
import { medianMs, printLine, type BenchSection } from './harness.js';

/**
 * Issue 9 item 4: a reply just under the 32 MiB limit listing ~485,000 `<file_info>`, of which its two
 * results use a handful. Figures, each against a baseline of the same run:
 *   1. parse + accept (parseSchedulerReply) vs fast-xml-parser's bare parse of the same text (goal <= 3x);
 *   2. `altplat run --json --files` on it: peak RSS above the CLI's idle peak (the same command with no
 *      reply), as a multiple of the reply's size (goal <= 8x; an object tree of the whole reply was 26x).
 */
const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..', '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');
const LINUX = 'x86_64-pc-linux-gnu';

/** A runnable two-result reply padded with unused `<file_info>` up to just under `limit` bytes. */
export function hugeReply(limit = MAX_REPLY_BYTES - 4096): { xml: string; files: Record<string, Buffer>; listed: number } {
  const base = makeReply({
    platform: LINUX,
    mainProgram: Buffer.from('#!/bin/sh\ncat in > out\n'),
    results: [{ name: 'big_r0', input: 'zero\n' }, { name: 'big_r1', input: 'one\n' }],
  });
  const close = base.xml.lastIndexOf('</scheduler_reply>');
  const one = (i: number) => `<file_info>\n<name>unused_${String(i).padStart(7, "0")}</name>\n<nbytes>4</nbytes>\n</file_info>\n`;
  const room = limit - Buffer.byteLength(base.xml);
  const count = Math.floor(room / one(0).length);
  const pad: string[] = [];
  for (let i = 0; i < count; i++) pad.push(one(i));
  return { xml: base.xml.slice(0, close) + pad.join('') + base.xml.slice(close), files: base.files, listed: count + 4 };
}

/** Peak RSS in KiB of one CLI run (GNU time's %M). */
async function peakKiB(args: string[]): Promise<number> {
  const { stderr } = await run('/usr/bin/time', ['-f', 'PEAK %M', process.execPath, cli, ...args], { maxBuffer: 64 << 20 })
    .catch((e: { stderr?: string }) => ({ stderr: e.stderr ?? '' }));
  const m = /PEAK (\d+)/.exec(stderr);
  if (!m) throw new Error(`no peak RSS from /usr/bin/time: ${stderr.slice(-300)}`);
  return Number(m[1]);
}

const parseSection: BenchSection = {
  title: 'reply near 32 MiB with ~485,000 <file_info>: parse + accept vs fast-xml-parser bare parse',
  run: async () => {
    const reply = hugeReply();
    const bytes = Buffer.byteLength(reply.xml);
    let accepted = 0;
    const ours = await medianMs(() => {
      accepted = parseSchedulerReply(reply.xml, { host: [LINUX], alt: [] }).assignments.length;
    }, 3);
    const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false });
    const bare = await medianMs(() => parser.parse(reply.xml), 3);
    printLine({ name: `parse + accept (${reply.listed} file_info, ${(bytes / 2 ** 20).toFixed(1)} MiB, ${accepted} results)`,
      value: ours, baseline: bare, goal: '<= 3x', note: 'baseline: fast-xml-parser parse() alone, no validation' });
  },
};

const memorySection: BenchSection = {
  title: 'altplat run --json --files on that reply: peak memory above idle vs the reply size',
  run: async () => {
    const dataDir = await tempDataDir('altplat-bench-reply-');
    try {
      const reply = hugeReply();
      const { replyFile, filesDir } = await writeReply(dataDir, reply);
      const bytes = (await fsp.stat(replyFile)).size;
      const common = ['--json', '--data-dir', dataDir, '--host-platform', LINUX];
      const idle = await peakKiB(['run', ...common]);
      const t0 = performance.now();
      const busy = await peakKiB(['run', ...common, '--files', filesDir, replyFile]);
      const ms = performance.now() - t0;
      const aboveIdle = (busy - idle) * 1024;
      printLine({ name: 'CLI peak RSS above idle / reply size', value: aboveIdle / bytes, baseline: 1, unit: 'x', goal: '<= 8x',
        note: `idle ${(idle / 1024).toFixed(0)} MiB, with the reply ${(busy / 1024).toFixed(0)} MiB, reply ${(bytes / 2 ** 20).toFixed(1)} MiB; whole run ${(ms / 1000).toFixed(1)} s` });
    } finally {
      await fsp.rm(dataDir, { recursive: true, force: true });
    }
  },
};

export const sections: BenchSection[] = [parseSection, memorySection];
