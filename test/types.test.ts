/*
 * Type tests of the public API: a wrong event name or payload, or an unknown error code, does not
 * compile. Each case is compiled twice with the real tsc: with `// @ts-expect-error` on the wrong line
 * (must compile) and without it (must fail, with the error on that line) — so the test can fail.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const INDEX = path.resolve('src/index.ts').replace(/\.ts$/, '.js');
const TSC = path.resolve('node_modules/.bin/tsc');

const CASES: Array<[string, string]> = [
  ['unknown event name', "client.on('progres', () => {});"],
  ['wrong payload field', "client.on('progress', (p) => { const n: string = p.fractionDone; void n; });"],
  ['unknown error code', "void isAltplatError(new Error(), 'NO_SUCH_CODE');"],
  ['a state event has no fractionDone', "client.on('state', (e) => { void e.fractionDone; });"],
];

async function compile(dir: string, file: string, body: string): Promise<{ ok: boolean; out: string }> {
  const src = `import { AltplatClient, isAltplatError } from '${INDEX}';
declare const client: AltplatClient;
// The right uses compile:
client.on('progress', (p) => { const f: number = p.fractionDone; const n: string = p.task; void f; void n; });
client.on('report', (r) => { void r.outcome; void r.masterUrl; });
const e: unknown = undefined;
if (isAltplatError(e, 'DATA_DIR_IN_USE')) { const c: 'DATA_DIR_IN_USE' = e.code; void c; }
${body}
`;
  const f = path.join(dir, file);
  await fsp.writeFile(f, src);
  try {
    const r = await run(TSC, ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022',
      '--skipLibCheck', '--types', 'node', '--typeRoots', path.resolve('node_modules/@types'), f], { cwd: dir });
    return { ok: true, out: r.stdout };
  } catch (err) {
    return { ok: false, out: String((err as { stdout?: string }).stdout ?? err) };
  }
}

describe('the public API\'s types', () => {
  it('reject a wrong event name or payload and an unknown error code', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-types-'));
    const lines = CASES.map(([what, code]) => `// ${what}\n// @ts-expect-error\n${code}`).join('\n');
    const good = await compile(dir, 'expect-errors.ts', lines);
    expect(good.out).toBe('');
    expect(good.ok).toBe(true);
    // All wrong lines in one file, without the directives: each must give an error on its own line.
    const bad = await compile(dir, 'bad.ts', CASES.map(([, code]) => code).join('\n'));
    expect(bad.ok).toBe(false);
    CASES.forEach(([what], i) => expect(bad.out, what).toContain(`bad.ts(${8 + i},`));
  });
});
