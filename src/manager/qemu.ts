import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fsp, openSync, closeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Patience, patientTimeout, watchForStarvation } from './patience.js';
import { AltplatError, errnoCode } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { kvmPrecheck, verdictStore } from './accel.js';
import { QgaClient } from './qga.js';
import { QmpClient } from './qmp.js';
import type { VmConfig } from './vm-config.js';

const execFileP = promisify(execFile);

export const QEMU_BINARY = process.env.ALTPLAT_QEMU ?? 'qemu-system-x86_64';
export const QEMU_IMG = process.env.ALTPLAT_QEMU_IMG ?? 'qemu-img';
/** Pidfile the manager keeps in its run dir (the slot) for the VM it owns. */
export const PIDFILE = 'altplat_qemu.pid';
export const CONSOLE_LOG = 'qemu_console.log';
export const QEMU_STDERR = 'qemu_stderr.log';

export interface PidfileContent {
  pid: number;
  /** The task (result name) the VM belongs to; also in QEMU's `-name`, so a reused pid is not mistaken. */
  task: string;
  socketDir: string;
  startedAt: string;
}

/**
 * Creates the task's linked clone: a qcow2 overlay on the read-only base, or on the app version's
 * overlay (which sits on the base) when the app version ships one. The chain is given to QEMU
 * explicitly (qemuArgs), so the backing names recorded in the files do not need to match where the
 * files are now; the base is opened read-only and stays byte-identical however the task ends.
 */
export async function createOverlay(overlay: string, base: string, appOverlay?: string): Promise<void> {
  await fsp.rm(overlay, { force: true });
  const backing = path.resolve(appOverlay ?? base);
  try {
    const size = await qcow2VirtualSize(base) ?? (JSON.parse((await execFileP(QEMU_IMG, ['info', '-U', '--output=json', path.resolve(base)])).stdout) as { 'virtual-size': number })['virtual-size'];
    await execFileP(QEMU_IMG, ['create', '-q', '-f', 'qcow2', '-u', '-F', 'qcow2', '-b', backing, overlay, String(size)]);
  } catch (e) {
    throw new AltplatError('VM_OVERLAY_FAILED', `qemu-img create of ${overlay} on ${backing} failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`,
      { overlay, backing }, { cause: e });
  }
}

/**
 * A qcow2 image's virtual size from its header (magic `QFI\xfb`, size at byte 24, big-endian; the
 * same in every qcow2 version): one qemu-img run less before each task. Undefined when the file is not
 * qcow2 (qemu-img info decides then).
 */
async function qcow2VirtualSize(file: string): Promise<number | undefined> {
  const fh = await fsp.open(file, 'r');
  try {
    const b = Buffer.alloc(32);
    const { bytesRead } = await fh.read(b, 0, 32, 0);
    if (bytesRead < 32 || b.readUInt32BE(0) !== 0x514649fb) return undefined;
    const size = Number(b.readBigUInt64BE(24));
    return Number.isSafeInteger(size) && size > 0 ? size : undefined;
  } finally {
    await fh.close();
  }
}

/** Internal snapshot tags stored in a qcow2 image (qemu-img snapshot -l). */
export async function listSnapshots(image: string): Promise<string[]> {
  try {
    const { stdout } = await execFileP(QEMU_IMG, ['snapshot', '-U', '-l', '--output=json', image]);
    const parsed = JSON.parse(stdout || '[]') as Array<{ name: string }> | { snapshots?: Array<{ name: string }> };
    const list = Array.isArray(parsed) ? parsed : parsed.snapshots ?? [];
    return list.map((s) => s.name);
  } catch (e) {
    // Older qemu-img has no JSON output for snapshot -l; parse the table.
    try {
      const { stdout } = await execFileP(QEMU_IMG, ['snapshot', '-U', '-l', image]);
      return stdout.split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1]).filter((t): t is string => !!t);
    } catch {
      throw new AltplatError('VM_IMAGE_UNREADABLE', `cannot list snapshots of ${image}: ${(e as Error).message}`, { image }, { cause: e });
    }
  }
}

function isQemuOf(cmdline: string, task: string): boolean {
  return cmdline.includes(`altplat:${sanitizeTag(task)}`);
}

function sanitizeTag(task: string): string {
  return task.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120);
}

/**
 * Ends a VM left behind by a crashed manager: reads the pidfile in `runDir`, and kills the process only
 * if its command line carries this task's tag (a recycled pid is left alone). Returns the pid killed.
 */
export async function killOrphanVm(runDir: string, task: string, waitMs = 5_000): Promise<number | undefined> {
  let info: PidfileContent;
  try {
    info = JSON.parse(await fsp.readFile(path.join(runDir, PIDFILE), 'utf8')) as PidfileContent;
  } catch {
    return undefined;
  }
  let killed: number | undefined;
  let cmdline = '';
  try {
    cmdline = (await fsp.readFile(`/proc/${info.pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch { /* gone already */ }
  if (cmdline && info.task === task && isQemuOf(cmdline, task)) {
    try {
      process.kill(info.pid, 'SIGKILL');
      killed = info.pid;
    } catch { /* exited meanwhile */ }
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && (await pidAlive(info.pid))) await new Promise((r) => setTimeout(r, 20));
  }
  if (info.socketDir && path.basename(info.socketDir).startsWith('altplat-vm-')) {
    await fsp.rm(info.socketDir, { recursive: true, force: true });
  }
  await fsp.rm(path.join(runDir, PIDFILE), { force: true });
  return killed;
}

async function pidAlive(pid: number): Promise<boolean> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // A zombie (state Z) has exited; only its parent's wait is missing.
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export interface StartOptions {
  config: VmConfig;
  /** Where the pidfile, console log and QEMU's stderr go (the slot, for the manager). */
  runDir: string;
  /** The task's qcow2 overlay (see createOverlay). */
  overlay: string;
  /** Task tag (result name): in the pidfile and QEMU's -name. */
  task: string;
  accel: 'kvm' | 'tcg';
  /** Restore this internal snapshot at start (`-loadvm`). */
  loadvm?: string;
  /** The task's job disk (job-disk.ts), a qcow2 attached as the second virtio-blk disk (/dev/vdb). */
  jobDisk?: string;
  /** A saved booted state's disk (boot-state.ts), read-only, between the base and the task overlay. */
  stateDisk?: string;
  /** Resume the saved booted state whose memory image is this file (`-incoming`). */
  incoming?: string;
  /** Add a user-mode NIC; off unless the job asks for network. */
  network?: boolean;
  /** nice value for QEMU; BOINC runs science at the lowest priority. */
  nice?: number;
}

export interface ExitInfo { code: number | null; signal: NodeJS.Signals | null }

/** A path inside a -blockdev option string: commas are doubled, QEMU's escape for them. */
function blockPath(p: string): string {
  return path.resolve(p).replace(/,/g, ',,');
}

/** Builds QEMU's argument list (headless, -nodefaults, no NIC unless asked). */
export function qemuArgs(o: StartOptions, socketDir: string): string[] {
  const c = o.config;
  const args = [
    '-name', `altplat:${sanitizeTag(o.task)}`,
    '-accel', o.accel,
    '-M', c.machine,
    // The platform's one virtual CPU under KVM and TCG alike (docs/HOMOGENEITY.md): never `host` or `max`,
    // which follow the volunteer's processor or the accelerator. `enforce` makes QEMU refuse to start
    // rather than silently drop a feature the host cannot provide (startFailure says so).
    '-cpu', `${c.cpuModel},enforce`,
    '-smp', String(c.cpus), '-m', String(c.memoryMb),
    '-kernel', c.kernel, '-initrd', c.initrd, '-append', c.append,
    '-display', 'none', '-vga', 'none', '-nodefaults', '-no-user-config', '-no-reboot',
    // relative: QEMU runs with cwd = runDir, and a path in a chardev spec must not hold commas
    '-serial', `file:${CONSOLE_LOG}`, '-monitor', 'none',
    '-qmp', `unix:${path.join(socketDir, 'qmp.sock')},server=on,wait=off`,
    '-chardev', `socket,id=qga0,path=${path.join(socketDir, 'qga.sock')},server=on,wait=off`,
    '-device', 'virtio-serial-pci,id=vser0',
    // id= is what makes QEMU emit VSERPORT_CHANGE when the agent opens the port (recipe §3 gotcha).
    '-device', 'virtserialport,bus=vser0.0,chardev=qga0,id=qgaport,name=org.qemu.guest_agent.0',
    // The disk chain, bottom up: read-only base, optional read-only app-version overlay, task overlay.
    '-blockdev', `driver=file,filename=${blockPath(c.baseDisk)},node-name=base-file,read-only=on`,
    '-blockdev', 'driver=qcow2,file=base-file,node-name=base,read-only=on',
  ];
  if (c.appOverlay) {
    args.push('-blockdev', `driver=file,filename=${blockPath(c.appOverlay)},node-name=app-file,read-only=on`,
      '-blockdev', 'driver=qcow2,file=app-file,node-name=app,backing=base,read-only=on');
  }
  let below = c.appOverlay ? 'app' : 'base';
  if (o.stateDisk) {
    args.push('-blockdev', `driver=file,filename=${blockPath(o.stateDisk)},node-name=state-file,read-only=on`,
      '-blockdev', `driver=qcow2,file=state-file,node-name=state,backing=${below},read-only=on`);
    below = 'state';
  }
  // lazy-refcounts on the writable images: without it qcow2 fdatasyncs the refcount blocks before
  // each L2 update, about once per 64 KiB cluster of a snapshot's vmstate (strace: 6166 fdatasyncs for
  // three 132 MB saves, 74 with it), and a checkpoint save took 0.9-5 s on a busy disk instead of
  // 0.3-0.6 s. Crash safety is kept: the image is marked dirty first and QEMU rebuilds its refcounts
  // from every L1 table (the snapshots' too) on the next read-write open; snapshot tables and headers
  // are still written in order with flushes, and a snapshot's clusters are never written in place.
  args.push(
    '-blockdev', `driver=file,filename=${blockPath(o.overlay)},node-name=file0,discard=unmap`,
    '-blockdev', `driver=qcow2,file=file0,node-name=disk0,backing=${below},lazy-refcounts=on`,
    '-device', 'virtio-blk-pci,drive=disk0,id=vblk0',
  );
  if (o.jobDisk) {
    // backing: the job disk's own raw image, named in the overlay (it sits next to it in the slot).
    args.push('-blockdev', `driver=file,filename=${blockPath(o.jobDisk)},node-name=jobfile0,discard=unmap`,
      '-blockdev', 'driver=qcow2,file=jobfile0,node-name=job0,lazy-refcounts=on',
      '-device', 'virtio-blk-pci,drive=job0,id=vblk1');
  }
  if (o.network) args.push('-nic', 'user,model=virtio-net-pci');
  if (o.loadvm) args.push('-loadvm', o.loadvm);
  // exec: runs under /bin/sh; the path is single-quoted for it.
  if (o.incoming) args.push('-incoming', `exec:cat '${path.resolve(o.incoming).replace(/'/g, `'\\''`)}'`);
  return args;
}

/**
 * One running QEMU process and its two control channels. Every VM started here is owned: a pidfile
 * tagged with the task sits in the run dir until the process is gone.
 */
export class QemuVm {
  readonly qmp: QmpClient;
  readonly qga: QgaClient;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  private exitInfo?: ExitInfo;
  readonly startedAt = Date.now();

  private constructor(readonly opts: StartOptions, private readonly child: ChildProcess, readonly socketDir: string,
    qmp: QmpClient, qga: QgaClient, exited: Promise<ExitInfo>) {
    this.qmp = qmp;
    this.qga = qga;
    this.pid = child.pid!;
    this.exited = exited;
    void exited.then((e) => { this.exitInfo = e; QemuVm.live.delete(this); });
    QemuVm.live.add(this);
  }

  get hasExited(): boolean { return this.exitInfo !== undefined; }

  /** Every VM this process started that has not ended (a builder's, a resuming one, the task's). */
  private static readonly live = new Set<QemuVm>();

  /** SIGKILLs every VM of this process: for an exit hook, whatever step the process was at. */
  static killAllNow(): void {
    for (const vm of QemuVm.live) if (!vm.hasExited) try { process.kill(vm.pid, 'SIGKILL'); } catch { /* gone */ }
  }

  static async start(o: StartOptions): Promise<QemuVm> {
    const socketDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'altplat-vm-'));
    const stderrFd = openSync(path.join(o.runDir, QEMU_STDERR), 'w');
    await fsp.writeFile(path.join(o.runDir, CONSOLE_LOG), '');
    let child: ChildProcess;
    try {
      child = spawn(QEMU_BINARY, qemuArgs(o, socketDir), { cwd: o.runDir, stdio: ['ignore', 'ignore', stderrFd] });
    } finally {
      closeSync(stderrFd);
    }
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: -1, signal: null }));
    });
    if (child.pid === undefined) {
      await exited;
      await fsp.rm(socketDir, { recursive: true, force: true });
      throw new AltplatError('VM_START_FAILED', `cannot start ${QEMU_BINARY} (is QEMU installed?)`, { binary: QEMU_BINARY });
    }
    // Its timeouts count only time it could run (patience.ts): at nice 19 a busy host starves it.
    const unwatch = watchForStarvation(child.pid);
    void exited.then(unwatch);
    try {
      os.setPriority(child.pid, o.nice ?? 19);
    } catch { /* not fatal: some sandboxes forbid it */ }
    const pidInfo: PidfileContent = { pid: child.pid, task: o.task, socketDir, startedAt: new Date().toISOString() };
    await writeFileAtomic(path.join(o.runDir, PIDFILE), JSON.stringify(pidInfo) + '\n');

    let qmp: QmpClient | undefined;
    let qga: QgaClient | undefined;
    try {
      const early = exited.then(async (e) => { throw await startFailure(o, e); });
      early.catch(() => undefined);
      qmp = await Promise.race([QmpClient.connect(path.join(socketDir, 'qmp.sock'), { connectTimeoutMs: 15_000 }), early]);
      qga = await Promise.race([QgaClient.connect(path.join(socketDir, 'qga.sock'), { connectTimeoutMs: 15_000 }), early]);
    } catch (e) {
      qmp?.destroy();
      const ownExit = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000))]);
      child.kill('SIGKILL');
      await exited;
      await fsp.rm(socketDir, { recursive: true, force: true });
      await fsp.rm(path.join(o.runDir, PIDFILE), { force: true });
      // The channel closed because QEMU quit during start-up (a CPU model it cannot provide, say): its
      // stderr says why, which is worth more than "socket closed".
      if (ownExit && (e as AltplatError).code === 'VM_SOCKET_CLOSED') throw await startFailure(o, ownExit);
      throw e;
    }
    return new QemuVm(o, child, socketDir, qmp, qga, exited);
  }

  /**
   * Waits until the guest agent answers (VSERPORT_CHANGE open, then guest-sync). Failures are
   * classified: VM_KERNEL_PANIC (seen on the console), VM_AGENT_FAILED (qemu-ga keeps dying in the
   * guest), VM_EXITED (QEMU ended; its stderr quoted), VM_BOOT_TIMEOUT.
   */
  async waitAgent(timeoutMs = this.opts.config.bootTimeoutSec * 1000): Promise<number> {
    const t0 = Date.now();
    // Counts only time the VM could run: a host busy with the volunteer's own work starves it (patience.ts).
    const patience = new Patience(timeoutMs);
    const failed = this.exited.then(async (e) => { throw await startFailure(this.opts, e); });
    failed.catch(() => undefined);
    const panicWatch = (async () => {
      while (!patience.expired() && !this.hasExited) {
        const con = await fsp.readFile(path.join(this.opts.runDir, CONSOLE_LOG), 'utf8').catch(() => '');
        const m = /Kernel panic[^\n]*/.exec(con);
        if (m) throw new AltplatError('VM_KERNEL_PANIC', `the guest kernel panicked: ${m[0].trim()}`, { console: tail(con) });
        // /init restarts a failing agent every second; three failures will not heal by waiting.
        const agentFailures = con.match(/qemu-ga exited rc=\d+/g) ?? [];
        if (agentFailures.length >= 3) {
          throw new AltplatError('VM_AGENT_FAILED', `the guest agent keeps failing in the guest: ${agentFailures.at(-1)}`, { console: tail(con) });
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    panicWatch.catch(() => undefined);
    const ready = (async () => {
      // A saved state keeps the runstate it was saved in (stopped): run it once the stream is loaded.
      if (this.opts.incoming) await this.finishIncoming(patience);
      // After -loadvm or -incoming the port is already open in the restored guest: no event comes, so sync directly.
      if (!this.opts.loadvm && !this.opts.incoming) {
        await this.qmp.waitEvent('VSERPORT_CHANGE', (d) => d.id === 'qgaport' && d.open === true, timeoutMs);
      }
      // A resumed guest answers within milliseconds: retry the handshake often rather than once a second.
      await this.qga.sync(Math.max(1000, patience.remainingMs()), this.opts.incoming ? 100 : 1000);
    })();
    try {
      await Promise.race([ready, failed, panicWatch.then(() => new Promise(() => {}))]);
    } catch (e) {
      if ((e as AltplatError).code === 'VM_SOCKET_CLOSED') {
        // The channels close as QEMU exits; the exit (and the console) say why.
        const ex = await Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 5_000))]);
        if (ex) throw await startFailure(this.opts, ex);
      }
      if ((e as AltplatError).code === 'QMP_TIMEOUT' || (e as AltplatError).code === 'QGA_TIMEOUT') {
        const con = await fsp.readFile(path.join(this.opts.runDir, CONSOLE_LOG), 'utf8').catch(() => '');
        throw new AltplatError('VM_BOOT_TIMEOUT', `the guest agent did not answer within ${timeoutMs / 1000} s (accel ${this.opts.accel})`,
          { accel: this.opts.accel, console: tail(con) }, { cause: e });
      }
      throw e;
    }
    return Date.now() - t0;
  }

  private async finishIncoming(patience: Patience): Promise<void> {
    let delay = 2;
    for (;;) {
      const r = await this.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (r.status === 'completed') break;
      if (r.status === 'failed' || r.status === 'cancelled') {
        throw new AltplatError('VM_INCOMING_FAILED', `loading the saved state failed: ${r['error-desc'] ?? r.status}`, { status: r.status });
      }
      if (patience.expired()) throw new AltplatError('QMP_TIMEOUT', 'loading the saved state did not complete in time');
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(20, delay * 2);
    }
    if ((await this.qmp.queryStatus()) !== 'running') await this.qmp.execute('cont');
  }

  async pause(): Promise<void> {
    await this.qmp.execute('stop');
  }

  async resume(): Promise<void> {
    await this.qmp.execute('cont');
    // Replies queued while paused may arrive now, out of step with new requests.
    this.qga.invalidate();
  }

  async status(): Promise<string> { return this.qmp.queryStatus(); }

  /** Internal snapshot of RAM + disk as a QMP job (snapshot-save), stored in the task overlay. */
  async saveSnapshot(tag: string): Promise<void> {
    await this.qmp.runJob('snapshot-save', { 'job-id': `save-${tag}`, tag, vmstate: 'disk0', devices: this.snapshotDevices });
    // Durable before the caller records the tag as the checkpoint: QEMU flushes before it writes the
    // snapshot table, not necessarily after the header update that makes the new snapshot visible.
    await Promise.all([this.opts.overlay, this.opts.jobDisk].filter((f): f is string => !!f).map(async (f) => {
      const fh = await fsp.open(path.resolve(f), 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }));
  }

  /** Every writable disk: a checkpoint holds the system disk and the job disk together. */
  get snapshotDevices(): string[] {
    return this.opts.jobDisk ? ['disk0', 'job0'] : ['disk0'];
  }

  async loadSnapshot(tag: string): Promise<void> {
    const wasRunning = (await this.qmp.queryStatus()) === 'running';
    try {
      await this.qmp.runJob('snapshot-load', { 'job-id': `load-${tag}`, tag, vmstate: 'disk0', devices: this.snapshotDevices });
    } finally {
      // QEMU stops the VM for the load and only restarts it on success; a failed load must not
      // leave a running task frozen.
      if (wasRunning && !this.hasExited && (await this.qmp.queryStatus()) !== 'running') await this.qmp.execute('cont');
      this.qga.invalidate();
    }
  }

  /**
   * Saves RAM and device state to `file` (a migration to `exec:cat`), the VM stopped first so the
   * stream is one pass; QEMU flushes the disks as the migration completes. The VM stays stopped.
   */
  async saveMemory(file: string, timeoutMs = 120_000): Promise<void> {
    await this.qmp.execute('stop');
    await this.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 2 ** 40 });
    const uri = `exec:cat > '${path.resolve(file).replace(/'/g, `'\\''`)}'`;
    await this.qmp.execute('migrate', { uri });
    const patience = new Patience(timeoutMs);
    let delay = 5;
    for (;;) {
      const r = await this.qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
      if (r.status === 'completed') return;
      if (r.status === 'failed' || r.status === 'cancelled') {
        throw new AltplatError('VM_SAVE_FAILED', `saving the VM's memory failed: ${r['error-desc'] ?? r.status}`, { status: r.status });
      }
      if (patience.expired()) throw new AltplatError('VM_SAVE_FAILED', `saving the VM's memory took over ${timeoutMs} ms`);
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(50, delay * 2);
    }
  }

  async deleteSnapshot(tag: string): Promise<void> {
    await this.qmp.runJob('snapshot-delete', { 'job-id': `delete-${tag}`, tag, devices: this.snapshotDevices });
  }

  /** CPU seconds (user + system) QEMU has used so far; 0 once it has exited. */
  async cpuSeconds(): Promise<number> {
    try {
      const stat = await fsp.readFile(`/proc/${this.pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14 and 15 (utime, stime) are at index 11, 12 after the state field; clock ticks of 1/100 s
      // (USER_HZ is 100 on every Linux ABI Node supports).
      return (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      return 0;
    }
  }

  /**
   * Clean power off: the guest agent's guest-shutdown (the guest syncs and powers off), then QMP quit,
   * then SIGKILL, each after a grace period. Resolves when the process is gone.
   */
  async powerOff(graceMs = 10_000): Promise<ExitInfo> {
    if (!this.hasExited) {
      try {
        await Promise.race([this.qga.shutdown(), new Promise((r) => setTimeout(r, 2_000))]);
      } catch { /* agent gone: fall through to quit */ }
      if (await this.waitExit(graceMs)) return this.finish();
      await this.quit();
    }
    return this.finish();
  }

  /** Host-side power off (QMP quit), then SIGKILL if QEMU does not go within 5 s. */
  async quit(): Promise<ExitInfo> {
    if (!this.hasExited) {
      try {
        await this.qmp.execute('quit', undefined, 2_000);
      } catch { /* the socket may close before the reply */ }
      if (!(await this.waitExit(5_000))) this.child.kill('SIGKILL');
    }
    return this.finish();
  }

  async kill(): Promise<ExitInfo> {
    if (!this.hasExited) this.child.kill('SIGKILL');
    return this.finish();
  }

  private async waitExit(ms: number): Promise<boolean> {
    if (this.hasExited) return true;
    // Patient: a starved QEMU that is shutting down is slow, and a SIGKILL would leave its images dirty.
    let cancel = (): void => {};
    const r = await Promise.race([this.exited.then(() => true), new Promise<boolean>((res) => { cancel = patientTimeout(ms, () => res(false)); })]);
    cancel();
    return r;
  }

  private async finish(): Promise<ExitInfo> {
    const e = await this.exited;
    this.qmp.destroy();
    this.qga.destroy();
    await fsp.rm(this.socketDir, { recursive: true, force: true });
    await fsp.rm(path.join(this.opts.runDir, PIDFILE), { force: true }).catch((err) => {
      if (errnoCode(err) !== 'ENOENT') throw err;
    });
    return e;
  }
}

function tail(s: string, n = 2000): string {
  return s.length > n ? s.slice(-n) : s;
}

async function startFailure(o: StartOptions, e: ExitInfo): Promise<AltplatError> {
  const stderr = await fsp.readFile(path.join(o.runDir, QEMU_STDERR), 'utf8').catch(() => '');
  const con = await fsp.readFile(path.join(o.runDir, CONSOLE_LOG), 'utf8').catch(() => '');
  if (/Kernel panic/.test(con)) {
    return new AltplatError('VM_KERNEL_PANIC', `the guest kernel panicked: ${/Kernel panic[^\n]*/.exec(con)![0].trim()}`, { console: tail(con) });
  }
  const missing = stderr.match(/doesn't support requested feature: [^\n]*/g);
  if (missing) {
    return new AltplatError('VM_CPU_MODEL_UNAVAILABLE',
      `${o.accel === 'kvm' ? 'this host' : 'TCG'} cannot provide the platform's CPU model ${o.config.cpuModel} (${missing.map((m) => m.replace(/^.*feature: /, '')).slice(0, 8).join(', ')}); the platform never runs on another model`,
      { accel: o.accel, cpuModel: o.config.cpuModel, stderr: tail(stderr) });
  }
  if (o.accel === 'kvm' && /kvm|KVM/.test(stderr)) {
    return new AltplatError('VM_KVM_FAILED', `QEMU failed under KVM: ${tail(stderr.trim(), 500)}`, { stderr: tail(stderr), exit: e });
  }
  return new AltplatError('VM_EXITED', `QEMU exited (${e.signal ?? `code ${e.code}`}) before the guest was ready: ${tail(stderr.trim(), 500) || 'no message'}`,
    { stderr: tail(stderr), console: tail(con), exit: e });
}

/**
 * Starts the VM and waits for its agent, choosing the accelerator: `tcg`/`kvm` as configured, or for
 * `auto` KVM only when the pre-check passes and no earlier boot proved it broken, with a timed boot
 * (`kvmProbeMs`) falling back to TCG; the verdict is cached (see accel.ts).
 */
export async function startVm(o: Omit<StartOptions, 'accel'> & { kvmProbeMs?: number; log?: (s: string) => void; accelOverride?: 'kvm' | 'tcg';
  /** The BOINC data dir: the verdict is then kept in `<data>/altplat/`, where discovery reads it (src/host/accel-verdict.ts). */
  dataDir?: string; cpuModel?: string }): Promise<{ vm: QemuVm; bootMs: number }> {
  const log = o.log ?? (() => {});
  const forced = process.env.ALTPLAT_ACCEL as 'kvm' | 'tcg' | 'auto' | undefined;
  const choice = o.accelOverride ?? (forced && ['kvm', 'tcg', 'auto'].includes(forced) ? forced : o.config.accel);
  if (choice !== 'auto') {
    const vm = await QemuVm.start({ ...o, accel: choice });
    try {
      return { vm, bootMs: await vm.waitAgent() };
    } catch (e) {
      await vm.kill();
      throw e;
    }
  }
  const pre = await kvmPrecheck();
  const verdicts = await verdictStore(QEMU_BINARY, o.dataDir, o.cpuModel ?? o.config.cpuModel, log);
  const cached = pre.usable ? await verdicts.read() : undefined;
  if (pre.usable && cached?.works !== false) {
    const probeMs = o.kvmProbeMs ?? 30_000;
    let vm: QemuVm | undefined;
    try {
      vm = await QemuVm.start({ ...o, accel: 'kvm' });
      const bootMs = await vm.waitAgent(cached?.works ? o.config.bootTimeoutSec * 1000 : probeMs);
      if (!cached) await verdicts.write({ works: true, reason: 'timed boot succeeded', bootSec: bootMs / 1000 });
      log(`accel: kvm (guest ready in ${(bootMs / 1000).toFixed(1)} s)`);
      return { vm, bootMs };
    } catch (e) {
      await vm?.kill();
      const reason = `${(e as AltplatError).code ?? 'ERROR'}: ${(e as Error).message}`;
      if ((e as AltplatError).code === 'VM_CPU_MODEL_UNAVAILABLE') {
        // KVM works; this host's processor lacks part of the model. TCG emulates the model exactly; KVM
        // stays worth trying for other platforms, so no verdict is recorded.
        log(`accel: KVM cannot run CPU model ${o.config.cpuModel} here (${reason}); using TCG with the same model`);
      } else {
        await verdicts.write({ works: false, reason });
        log(`accel: KVM failed (${reason}); using TCG`);
      }
      if (o.loadvm) throw e; // a snapshot taken under one accelerator is restored under the same one
    }
  } else {
    log(`accel: tcg (${pre.usable ? `KVM known broken here: ${cached?.reason}` : pre.reason})`);
  }
  const vm = await QemuVm.start({ ...o, accel: 'tcg' });
  try {
    return { vm, bootMs: await vm.waitAgent() };
  } catch (e) {
    await vm.kill();
    throw e;
  }
}
