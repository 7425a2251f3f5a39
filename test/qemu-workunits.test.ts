import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLATFORM_DIR, QEMU_FIRST, qemuPidsTagged, REPO, seedBootStates, sha256File } from './qemu-fixture.js';
import { MASTER, PROJECT_DIR, writeReply, type RunResult } from './helpers/wu-reply.js';

/**
 * Work units a project could really send, through the public CLI only (`altplat install`, `run --json`,
 * `task`, `verify`), as a volunteer's client would run them on the reference QEMU platforms: the paper's
 * Appendix A program built other ways, programs that read inputs, take quoted arguments, write other
 * outputs, fail, crash, write nothing or much, or cannot run in the guest. The reply is written here
 * in the layout BOINC's scheduler uses (sched/sched_send.cpp, sched/sched_types.cpp), not from the
 * other tests' fixtures.
 */
const CLI = path.join(REPO, 'dist', 'src', 'cli', 'main.js');
const PI_C = path.join(REPO, 'test', 'paper', 'pi.c');
const UNAME_C = '#include <stdio.h>\n#include <sys/utsname.h>\nint main(void) { struct utsname u; uname(&u); printf("%s\\n", u.machine); return 0; }\n';
const TAG = 'wu_'; // every result name starts with it, so our QEMU processes can be found
const baseImage = path.join(PLATFORM_DIR, 'image', 'base.qcow2');
let baseSha: string;
let work: string;

beforeAll(async () => {
  execFileSync('bash', [path.join(REPO, 'scripts', 'build-image.sh')], { stdio: 'ignore' });
  baseSha = sha256File(baseImage);
  work = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-wu-'));
}, 180_000);

afterAll(async () => {
  expect(qemuPidsTagged(TAG, work)).toEqual([]);
  expect(sha256File(baseImage)).toBe(baseSha);
  await fsp.rm(work, { recursive: true, force: true });
});

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  try {
    return { status: 0, stdout: execFileSync('node', [CLI, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }), stderr: '' };
  } catch (e) {
    const x = e as { status: number; stdout: string; stderr: string };
    return { status: x.status, stdout: x.stdout, stderr: x.stderr };
  }
}

function gcc(name: string, source: string, flags: string[], libs: string[] = []): string {
  const dir = path.join(work, 'build');
  execFileSync('mkdir', ['-p', dir]);
  const src = source.endsWith('.c') && existsSync(source) ? source : path.join(dir, `${name}.c`);
  if (src !== source) writeFileSync(src, source);
  const out = path.join(dir, name);
  execFileSync('gcc', [...flags, '-o', out, src, ...libs]);
  return out;
}

async function installedDataDir(name: string, prefs?: string): Promise<string> {
  const d = path.join(work, name);
  await fsp.mkdir(d);
  for (const p of ['x86_64-pc-linux-gnu', 'i686-pc-linux-gnu']) {
    const r = cli(['install', '--data-dir', d, path.join(REPO, 'alt_platforms', p)]);
    expect(r.status, r.stderr).toBe(0);
  }
  if (prefs) await fsp.writeFile(path.join(d, 'global_prefs_override.xml'), prefs);
  // The QEMU backends first: these are the VM's work units, whichever backend this host would pick.
  await fsp.mkdir(path.join(d, 'altplat'), { recursive: true });
  await fsp.writeFile(path.join(d, 'altplat', 'backend_order.json'), JSON.stringify(QEMU_FIRST));
  await seedBootStates(d);
  return d;
}

/** Nothing of a finished run may be left behind: VMs, slots, working copies; the platforms verify. */
function expectCleanAfterRun(d: string): void {
  expect(qemuPidsTagged(TAG, work)).toEqual([]);
  const slots = path.join(d, 'slots');
  expect(existsSync(slots) ? readdirSync(slots) : []).toEqual([]);
  const wc = path.join(d, 'alt_platforms_working');
  expect(existsSync(wc) ? readdirSync(wc) : []).toEqual([]);
  expect(sha256File(path.join(d, 'alt_platforms', 'x86_64-pc-linux-gnu', 'image', 'base.qcow2'))).toBe(baseSha);
  const v = cli(['verify', '--data-dir', d]);
  expect(v.status, v.stdout + v.stderr).toBe(0);
}

describe('work units through `altplat run` on the reference QEMU platforms (a windows_x86_64 host)', () => {
  it('the paper\'s program built other ways, inputs/arguments/outputs, failures, crashes, big and empty outputs, programs the guest cannot run', async () => {
    const d = await installedDataDir('many');
    const progs = {
      piDynO0: gcc('pi_dyn_O0', PI_C, ['-O0']),
      piDynO2: gcc('pi_dyn_O2', PI_C, ['-O2']),
      pi32O2: gcc('pi_32_O2', PI_C, ['-m32', '-O2', '-static']),
      args: gcc('args', `#include <stdio.h>
int main(int argc, char **argv) {
  FILE *in = fopen("in.dat", "r"), *out = fopen("result.dat", "w");
  if (!in || !out) { perror("open"); return 5; }
  int c; long n = 0; while ((c = fgetc(in)) != EOF) { fputc(c, out); n++; }
  for (int i = 1; i < argc; i++) fprintf(out, "[%s]\\n", argv[i]);
  fprintf(stderr, "args: read %ld bytes\\n", n);
  return 0;
}`, ['-O2', '-static']),
      exit3: gcc('exit3', '#include <stdio.h>\nint main(void) { printf("partial\\n"); fprintf(stderr, "failing on purpose\\n"); return 3; }', ['-static']),
      segv: gcc('segv', '#include <stdio.h>\n#include <signal.h>\nint main(void) { printf("before\\n"); fflush(stdout); raise(SIGSEGV); return 0; }', ['-static']),
      nothing: gcc('nothing', 'int main(void) { return 0; }', ['-static']),
      big: gcc('big', `#include <stdio.h>
int main(void) { FILE *f = fopen("big.bin", "w"); for (long i = 0; i < 6L*1024*1024/8; i++) fprintf(f, "%07lx\\n", i); fclose(f);
  for (long i = 0; i < 5L*1024*1024/8; i++) printf("%07lx\\n", i); return 0; }`, ['-O2', '-static']),
      // linked against libstdc++ (always there with gcc), which qemu-ga does not need, so the guest lacks it
      needlib: gcc('needlib', '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }', ['-O2'], ['-Wl,--no-as-needed', '-lstdc++']),
      pi32dyn: gcc('pi_32_dyn', PI_C, ['-m32', '-O3', '-mfpmath=387']),
      uname32: gcc('uname32', UNAME_C, ['-m32', '-static']),
      uname64: gcc('uname64', UNAME_C, ['-static']),
    };
    const script = (name: string, text: string) => {
      const f = path.join(work, name);
      writeFileSync(f, text, { mode: 0o755 });
      return f;
    };
    // An app version shipping its own shared library (found through LD_LIBRARY_PATH=., as the client sets it).
    const libSrc = path.join(work, 'libr3.c');
    writeFileSync(libSrc, 'int r3_answer(void) { return 42; }\n');
    const libFile = path.join(work, 'libr3.so.1');
    execFileSync('gcc', ['-shared', '-fPIC', '-Wl,-soname,libr3.so.1', '-o', libFile, libSrc]);
    const usesLib = path.join(work, 'build', 'useslib');
    writeFileSync(`${usesLib}.c`, '#include <stdio.h>\nint r3_answer(void);\nint main(void) { printf("answer %d\\n", r3_answer()); return 0; }\n');
    execFileSync('gcc', ['-o', usesLib, `${usesLib}.c`, libFile]);
    const native = (p: string) => execFileSync(p, { encoding: 'utf8', cwd: work, maxBuffer: 64 << 20 });
    const { reply, files } = writeReply(d, [
      { result: `${TAG}pi_dyn_O0`, platform: 'x86_64-pc-linux-gnu', program: progs.piDynO0 },
      { result: `${TAG}pi_dyn_O2`, platform: 'x86_64-pc-linux-gnu', program: progs.piDynO2 },
      { result: `${TAG}pi_32_O2`, platform: 'i686-pc-linux-gnu', program: progs.pi32O2 },
      {
        result: `${TAG}args`, platform: 'x86_64-pc-linux-gnu', program: progs.args, inputs: { 'in.dat': 'line one\nline two\n' },
        outputs: ['result.dat'], cmdline: `--name "hello world" 'single q' a\\"b $HOME * ''x`,
      },
      { result: `${TAG}exit3`, platform: 'x86_64-pc-linux-gnu', program: progs.exit3 },
      { result: `${TAG}segv`, platform: 'x86_64-pc-linux-gnu', program: progs.segv },
      { result: `${TAG}nothing`, platform: 'x86_64-pc-linux-gnu', program: progs.nothing },
      { result: `${TAG}big`, platform: 'x86_64-pc-linux-gnu', program: progs.big, outputs: ['stdout.txt', 'big.bin'] },
      { result: `${TAG}toobig`, platform: 'x86_64-pc-linux-gnu', program: progs.big, outputs: ['stdout.txt', 'big.bin'], maxNbytes: 100_000 },
      { result: `${TAG}bash`, platform: 'x86_64-pc-linux-gnu', program: script('bash.sh', '#!/bin/bash\necho hi\n') },
      {
        result: `${TAG}subdir`, platform: 'x86_64-pc-linux-gnu', program: script('subdir.sh', '#!/bin/sh\nmkdir -p out && cp in/data.txt out/res.txt && echo ok\n'),
        inputs: { 'in/data.txt': 'abc\n' }, outputs: ['stdout.txt', 'out/res.txt'],
      },
      {
        result: `${TAG}flood`, platform: 'x86_64-pc-linux-gnu',
        program: script('flood.sh', '#!/bin/sh\nhead -c 17825792 /dev/zero | tr "\\0" x >&2\necho "last words" >&2\nexit 2\n'),
      },
      { result: `${TAG}uname32`, platform: 'i686-pc-linux-gnu', program: progs.uname32 },
      { result: `${TAG}uname64`, platform: 'x86_64-pc-linux-gnu', program: progs.uname64 },
      { result: `${TAG}useslib`, platform: 'x86_64-pc-linux-gnu', program: usesLib, appFiles: { 'libr3.so.1': libFile } },
      { result: `${TAG}needlib`, platform: 'x86_64-pc-linux-gnu', program: progs.needlib },
      { result: `${TAG}pi_32_dyn`, platform: 'i686-pc-linux-gnu', program: progs.pi32dyn },
    ]);
    const r = cli(['run', '--json', '--max-tasks', '2', '--data-dir', d, '--host-platform', 'windows_x86_64', '--files', files, reply]);
    expect(r.status, r.stderr).toBe(1); // some results failed, on purpose
    const results = (JSON.parse(r.stdout) as { results: RunResult[] }).results;
    const by = Object.fromEntries(results.map((x) => [x.name.slice(TAG.length), x]));
    const out = (file: string) => readFileSync(path.join(d, 'projects', PROJECT_DIR, file));

    // The same binary gives in the VM exactly what it gives natively (dynamic x86-64 too: the guest's glibc).
    for (const [k, p] of [['pi_dyn_O0', progs.piDynO0], ['pi_dyn_O2', progs.piDynO2], ['pi_32_O2', progs.pi32O2]] as const) {
      expect(by[k], JSON.stringify(by[k])).toMatchObject({ outcome: 'success', exitStatus: 0, kind: 'alt' });
      expect(out(`${TAG}${k}_stdout_txt`).toString()).toBe(native(p));
    }
    // Input by open name, an output that is not stdout.txt, BOINC's argument splitting (parse_command_line).
    expect(by.args).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(out(`${TAG}args_result_dat`).toString()).toBe('line one\nline two\n[--name]\n[hello world]\n[single q]\n[a\\"b]\n[$HOME]\n[*]\n[\'x]\n');
    expect(by.args!.stderr).toContain('args: read 18 bytes');
    // A non-zero exit: compute_error with that exit status, its stdout and stderr kept.
    expect(by.exit3).toMatchObject({ outcome: 'compute_error', exitStatus: 3 });
    expect(by.exit3!.stderr).toContain('failing on purpose');
    expect(out(`${TAG}exit3_stdout_txt`).toString()).toBe('partial\n');
    // Killed by a signal in the guest: compute_error, 128 + signal, and said so in stderr.
    expect(by.segv).toMatchObject({ outcome: 'compute_error', exitStatus: 128 + 11 });
    expect(by.segv!.stderr).toContain('program killed by signal 11 (SIGSEGV)');
    expect(out(`${TAG}segv_stdout_txt`).toString()).toBe('before\n');
    // Writing nothing is a success with an empty stdout.txt.
    expect(by.nothing).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(by.nothing!.outputs.map((o) => o.nbytes)).toEqual([0]);
    // Several MB out, byte for byte.
    expect(by.big).toMatchObject({ outcome: 'success', exitStatus: 0 });
    native(progs.big); // writes big.bin into `work`
    expect(out(`${TAG}big_big_bin`).equals(readFileSync(path.join(work, 'big.bin')))).toBe(true);
    expect(out(`${TAG}big_stdout_txt`).toString()).toBe(native(progs.big));
    // Outputs over max_nbytes: the client refuses them as too big with their real size (ERR_FILE_TOO_BIG,
    // lib/error_numbers.h), not as missing.
    expect(by.toobig).toMatchObject({ outcome: 'compute_error', exitStatus: 0 });
    expect(by.toobig!.outputs.map((o) => [o.nbytes, o.status])).toEqual([[5 * 1024 * 1024, -131], [6 * 1024 * 1024, -131]]);
    // A script whose interpreter the guest lacks: said clearly.
    expect(by.bash).toMatchObject({ outcome: 'compute_error', exitStatus: 127 });
    expect(by.bash!.stderr).toContain('needs /bin/bash, which the guest image does not have');
    // Open names with a folder, in and out.
    expect(by.subdir).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(out(`${TAG}subdir_out_res_txt`).toString()).toBe('abc\n');
    // 17 MiB of stderr: its end (the reason for the failure) still reaches stderr.txt.
    expect(by.flood).toMatchObject({ outcome: 'compute_error', exitStatus: 2 });
    expect(by.flood!.stderr.includes('xxxxlast words\n'), by.flood!.stderr.slice(-300)).toBe(true);
    // The i686 platform looks like a 32-bit Linux to its programs (linux32 personality), x86-64 like itself.
    expect(out(`${TAG}uname32_stdout_txt`).toString()).toBe('i686\n');
    expect(out(`${TAG}uname64_stdout_txt`).toString()).toBe('x86_64\n');
    expect(by.useslib, by.useslib?.stderr).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(out(`${TAG}useslib_stdout_txt`).toString()).toBe('answer 42\n');
    // A shared library the guest lacks: the loader's own message reaches stderr.txt.
    expect(by.needlib).toMatchObject({ outcome: 'compute_error', exitStatus: 127 });
    expect(by.needlib!.stderr).toContain('libstdc++.so.6: cannot open shared object file');
    // A dynamic 32-bit program: the guest has no 32-bit loader; a clear message, not the shell's "not found".
    expect(by.pi_32_dyn).toMatchObject({ outcome: 'compute_error', exitStatus: 127, platform: 'i686-pc-linux-gnu' });
    expect(by.pi_32_dyn!.stderr).toContain('needs /lib/ld-linux.so.2, which the guest image does not have');
    expect(by.pi_32_dyn!.stderr).toContain('gcc -static');

    expectCleanAfterRun(d);
  }, 400_000);
});

/** A guest program counting `$1` steps of 0.2 s, resumable from its own count file (like a BOINC app). */
const COUNTER = `#!/bin/sh
i=0
[ -f count ] && i=$(cat count)
while [ $i -lt $1 ]; do
  i=$((i+1)); echo $i > count.tmp; mv count.tmp count; echo "step $i"
  echo "$i $1" | awk '{printf "%.4f\\n", $1/$2}' > fraction_done
  sleep 0.2
done
echo finished
`;

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Checkpoints the task's manager has logged so far (it takes none while the VM is paused). */
const checkpointsLogged = (d: string, slot: number): number =>
  readFileSync(path.join(d, 'slots', String(slot), 'stderr.txt'), 'utf8').split('\n').filter((l) => l.includes('] checkpoint altplat-ckpt')).length;

describe('`altplat task` controls VM tasks of a running `altplat run`', () => {
  it('suspend of a checkpointed VM quits it (BOINC\'s rule) and resume restores it; quit keeps the checkpoint for the next run; abort kills it', async () => {
    const d = await installedDataDir('control', '<global_preferences>\n   <disk_interval>2</disk_interval>\n</global_preferences>\n');
    const script = path.join(work, 'counter.sh');
    writeFileSync(script, COUNTER, { mode: 0o755 });
    const { reply, files } = writeReply(d, [
      { result: `${TAG}ctl_susp`, platform: 'x86_64-pc-linux-gnu', program: script, cmdline: '60' },
      { result: `${TAG}ctl_quit`, platform: 'x86_64-pc-linux-gnu', program: script, cmdline: '70' },
      { result: `${TAG}ctl_abort`, platform: 'x86_64-pc-linux-gnu', program: script, cmdline: '400' },
    ]);
    const args = ['run', '--json', '--max-tasks', '3', '--data-dir', d, '--host-platform', 'windows_x86_64', '--files', files, reply];
    const child = spawn('node', [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => { stdout += b.toString(); });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const task = (verb: string, result: string) => {
      const r = cli(['task', '--data-dir', d, verb, `${TAG}${result}`]);
      expect(r.status, `${verb} ${result}: ${r.stdout}${r.stderr}`).toBe(0);
    };
    try {
      // Wait until every program runs and has been checkpointed once.
      const slotOf: Record<string, number> = {};
      await until('three running programs with a checkpoint', () => {
        for (const s of [0, 1, 2]) {
          try {
            const st = JSON.parse(readFileSync(path.join(d, 'slots', String(s), 'altplat_manager_state.json'), 'utf8')) as { task: string; checkpoint?: string };
            if (st.checkpoint) slotOf[st.task.slice(TAG.length)] = s;
          } catch { /* not yet */ }
        }
        if (Object.keys(slotOf).length !== 3) return false;
        // ... and the client has seen each checkpoint (journaled from the manager's status message): the
        // suspend rule below is decided on what the client knows, not on the manager's own state file.
        try {
          const j = JSON.parse(readFileSync(path.join(d, 'altplat', 'tasks.json'), 'utf8')) as { tasks: Array<{ resultName: string; checkpointElapsed?: number }> };
          return j.tasks.filter((r) => r.resultName.startsWith(TAG) && (r.checkpointElapsed ?? 0) > 0).length === 3;
        } catch {
          return false;
        }
      });
      const qemuOf = (r: string) => qemuPidsTagged(`${TAG}${r}`)[0];
      const stateOf = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0];

      // It has checkpointed, so a suspend removes it from memory as the BOINC client does
      // (ACTIVE_TASK::preempt, leave_apps_in_memory 0): quit, keeping the checkpoint; resume restores it.
      // (Before its first checkpoint it would be paused with QMP stop: test/manager.test.ts.)
      task('suspend', 'ctl_susp');
      await until('the suspended VM to power off', () => {
        const log = readFileSync(path.join(d, 'slots', String(slotOf.ctl_susp), 'stderr.txt'), 'utf8');
        return log.includes('quit requested: powering off') && !qemuOf('ctl_susp');
      });
      const before = checkpointsLogged(d, slotOf.ctl_susp!);
      task('abort', 'ctl_abort');
      task('quit', 'ctl_quit');
      await until('the aborted and quit VMs to end', () => !qemuOf('ctl_abort') && !qemuOf('ctl_quit'));
      await new Promise((r) => setTimeout(r, 3000));
      // Suspended: out of memory, no checkpoints, not started again until resumed.
      expect(checkpointsLogged(d, slotOf.ctl_susp!)).toBe(before);
      expect(qemuOf('ctl_susp')).toBeUndefined();
      void stateOf;
      task('resume', 'ctl_susp');
      const code = await exited;
      expect(code).toBe(1); // the aborted one failed
      const first = Object.fromEntries((JSON.parse(stdout) as { results: RunResult[] }).results.map((x) => [x.name.slice(TAG.length), x]));
      expect(first.ctl_susp).toMatchObject({ outcome: 'success', exitStatus: 0, restarts: 1 });
      expect(first.ctl_susp!.stderr).toMatch(/restored checkpoint altplat-ckpt-[ab]/);
      expect(first.ctl_abort).toMatchObject({ outcome: 'aborted' });
      expect(first.ctl_quit).toMatchObject({ outcome: 'quit' });
      expect(qemuPidsTagged(TAG, work)).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    // The next run finishes the quit task from its checkpoint: every step exactly once.
    const again = cli(args);
    const second = Object.fromEntries((JSON.parse(again.stdout) as { results: RunResult[] }).results.map((x) => [x.name.slice(TAG.length), x]));
    expect(second.ctl_quit, JSON.stringify(second.ctl_quit)).toMatchObject({ outcome: 'success', exitStatus: 0 });
    expect(second.ctl_quit!.stderr).toMatch(/restored checkpoint altplat-ckpt-[ab]/);
    const steps = (n: number) => `${Array.from({ length: n }, (_, i) => `step ${i + 1}`).join('\n')}\nfinished\n`;
    expect(readFileSync(path.join(d, 'projects', PROJECT_DIR, `${TAG}ctl_quit_stdout_txt`), 'utf8')).toBe(steps(70));
    expect(readFileSync(path.join(d, 'projects', PROJECT_DIR, `${TAG}ctl_susp_stdout_txt`), 'utf8')).toBe(steps(60));
    expectCleanAfterRun(d);
  }, 400_000);
});
