import { createReadStream, promises as fsp } from 'node:fs';
import { randomInt } from 'node:crypto';
import { Patience, patientTimeout } from './patience.js';
import { AltplatError } from '../errors.js';
import { JsonLineSocket } from './json-socket.js';

/** What `guest-exec-status` reports (output fields decoded from base64). */
export interface GuestExecStatus {
  exited: boolean;
  exitCode?: number;
  signal?: number;
  stdout?: Buffer;
  stderr?: Buffer;
  outTruncated?: boolean;
  errTruncated?: boolean;
}

export interface GuestExecOptions {
  args?: string[];
  env?: string[];
  captureOutput?: boolean;
  input?: Buffer;
}

/** Chunk size for file transfer; the agent's own limit for guest-file-read is 48 MiB. */
export const QGA_CHUNK_BYTES = 1 << 20;

/**
 * Client for qemu-guest-agent over the host end of its virtio-serial port (a unix socket QEMU
 * listens on). The agent answers in order and without request ids, and a reply to a timed-out
 * request can still arrive later, so after any timeout (or a guest pause/restore) the stream is
 * re-synchronised with `guest-sync-delimited` before the next command: the host sends 0xFF plus the
 * sync request, then drops everything until the reply carrying its random id.
 *
 * Errors: AltplatError `QGA_COMMAND_FAILED` (the agent answered with an error; its text is in the
 * message), `QGA_TIMEOUT`, `QGA_FILE_TOO_LARGE`, `VM_SOCKET_CLOSED`.
 */
export class QgaClient {
  private waiter?: (m: Record<string, unknown>) => void;
  private chain: Promise<unknown> = Promise.resolve();
  private synced = false;

  private constructor(private readonly sock: JsonLineSocket, private readonly commandTimeoutMs: number) {
    sock.onMessage = (m) => this.waiter?.(m);
    sock.onClose = () => this.waiter?.({ __closed: true });
  }

  /** Connects to the QEMU side of the agent channel; no guest needs to be running for this. */
  static async connect(socketPath: string, opts: { connectTimeoutMs?: number; commandTimeoutMs?: number } = {}): Promise<QgaClient> {
    const sock = await JsonLineSocket.connect(socketPath, 'guest agent', opts.connectTimeoutMs ?? 10_000);
    return new QgaClient(sock, opts.commandTimeoutMs ?? 30_000);
  }

  /** Waits for the next message satisfying `accept`, dropping others; rejects on timeout or close. */
  private next(what: string, timeoutMs: number, accept: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const cancel = patientTimeout(timeoutMs, () => {
        this.waiter = undefined;
        this.synced = false;
        reject(new AltplatError('QGA_TIMEOUT', `guest agent command '${what}' got no answer within ${timeoutMs} ms`, { command: what }));
      });
      this.waiter = (m) => {
        if (m.__closed) {
          cancel();
          this.waiter = undefined;
          reject(new AltplatError('VM_SOCKET_CLOSED', `guest agent connection closed during '${what}'`, { command: what }));
          return;
        }
        if (!accept(m)) return;
        cancel();
        this.waiter = undefined;
        resolve(m);
      };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * The guest-sync-delimited handshake. Retried every `attemptMs` until `timeoutMs`: while the guest
   * boots nobody reads the port, and requests written then are lost or answered late (and dropped
   * here because their id is not the one awaited).
   */
  sync(timeoutMs = 10_000, attemptMs = 1_000): Promise<void> {
    return this.serial(() => this.syncNow(timeoutMs, attemptMs));
  }

  private async syncNow(timeoutMs: number, attemptMs: number): Promise<void> {
    const patience = new Patience(timeoutMs);
    for (;;) {
      const id = randomInt(1, 2 ** 47);
      this.sock.write({ execute: 'guest-sync-delimited', arguments: { id } }, Buffer.from([0xff]));
      try {
        await this.next('guest-sync-delimited', Math.max(50, Math.min(attemptMs, patience.remainingMs())), (m) => m.return === id);
        this.synced = true;
        return;
      } catch (e) {
        if ((e as AltplatError).code !== 'QGA_TIMEOUT' || patience.expired()) {
          if ((e as AltplatError).code === 'QGA_TIMEOUT') {
            throw new AltplatError('QGA_TIMEOUT', `guest agent did not answer guest-sync-delimited within ${timeoutMs} ms`, { command: 'guest-sync-delimited' });
          }
          throw e;
        }
      }
    }
  }

  /** Marks the stream as needing a resync (call after `cont` or a snapshot load). */
  invalidate(): void { this.synced = false; }

  /** Runs one agent command and returns its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    return this.serial(async () => {
      if (!this.synced) await this.syncNow(timeoutMs, 1_000);
      this.sock.write(args ? { execute: command, arguments: args } : { execute: command });
      const m = await this.next(command, timeoutMs, (x) => 'return' in x || 'error' in x);
      if ('error' in m) {
        const err = m.error as { class?: string; desc?: string };
        throw new AltplatError('QGA_COMMAND_FAILED', `guest agent command '${command}' failed: ${err.desc ?? JSON.stringify(err)}`,
          { command, errorClass: err.class, desc: err.desc });
      }
      return m.return as T;
    });
  }

  async ping(timeoutMs = 2_000): Promise<void> {
    await this.execute('guest-ping', undefined, timeoutMs);
  }

  /** Writes `data` to `guestPath` (created or truncated) in chunks; sets the mode when given. */
  async writeFile(guestPath: string, data: Buffer, mode?: number): Promise<void> {
    const handle = await this.execute<number>('guest-file-open', { path: guestPath, mode: 'w' });
    try {
      for (let off = 0; off < data.length; off += QGA_CHUNK_BYTES) {
        const chunk = data.subarray(off, off + QGA_CHUNK_BYTES);
        await this.execute('guest-file-write', { handle, 'buf-b64': chunk.toString('base64') });
      }
    } finally {
      await this.execute('guest-file-close', { handle });
    }
    if (mode !== undefined) await this.run('/bin/chmod', [mode.toString(8), guestPath]);
  }

  /** Streams a host file into the guest in chunks (no whole-file buffering); returns bytes copied. */
  async pushFile(hostPath: string, guestPath: string, mode?: number): Promise<number> {
    const handle = await this.execute<number>('guest-file-open', { path: guestPath, mode: 'w' });
    let total = 0;
    try {
      for await (const chunk of createReadStream(hostPath, { highWaterMark: QGA_CHUNK_BYTES })) {
        await this.execute('guest-file-write', { handle, 'buf-b64': (chunk as Buffer).toString('base64') });
        total += (chunk as Buffer).length;
      }
    } finally {
      await this.execute('guest-file-close', { handle });
    }
    if (mode !== undefined) await this.run('/bin/chmod', [mode.toString(8), guestPath]);
    return total;
  }

  /** Reads a whole guest file; refuses (QGA_FILE_TOO_LARGE) beyond `maxBytes`. */
  async readFile(guestPath: string, maxBytes = 64 << 20): Promise<Buffer> {
    const handle = await this.execute<number>('guest-file-open', { path: guestPath, mode: 'r' });
    const parts: Buffer[] = [];
    let total = 0;
    try {
      for (;;) {
        const r = await this.execute<{ count: number; 'buf-b64': string; eof: boolean }>('guest-file-read', { handle, count: QGA_CHUNK_BYTES });
        const b = Buffer.from(r['buf-b64'], 'base64');
        total += b.length;
        if (total > maxBytes) {
          throw new AltplatError('QGA_FILE_TOO_LARGE', `guest file ${guestPath} is larger than the allowed ${maxBytes} bytes`, { guestPath, maxBytes });
        }
        parts.push(b);
        if (r.eof || r.count === 0) break;
      }
    } finally {
      await this.execute('guest-file-close', { handle });
    }
    return Buffer.concat(parts);
  }

  /** Size of a guest file in bytes (guest-file-seek to its end), without reading it. */
  async fileSize(guestPath: string): Promise<number> {
    const handle = await this.execute<number>('guest-file-open', { path: guestPath, mode: 'r' });
    try {
      return (await this.execute<{ position: number }>('guest-file-seek', { handle, offset: 0, whence: 'end' })).position;
    } finally {
      await this.execute('guest-file-close', { handle });
    }
  }

  /** The last `maxBytes` bytes of a guest file (all of it when smaller). */
  async readFileTail(guestPath: string, maxBytes: number): Promise<Buffer> {
    const size = await this.fileSize(guestPath);
    if (size <= maxBytes) return this.readFile(guestPath, maxBytes);
    const handle = await this.execute<number>('guest-file-open', { path: guestPath, mode: 'r' });
    const parts: Buffer[] = [];
    let total = 0;
    try {
      await this.execute('guest-file-seek', { handle, offset: size - maxBytes, whence: 'set' });
      while (total < maxBytes) {
        const r = await this.execute<{ count: number; 'buf-b64': string; eof: boolean }>('guest-file-read', { handle, count: Math.min(QGA_CHUNK_BYTES, maxBytes - total) });
        const b = Buffer.from(r['buf-b64'], 'base64');
        parts.push(b);
        total += b.length;
        if (r.eof || r.count === 0) break;
      }
    } finally {
      await this.execute('guest-file-close', { handle });
    }
    return Buffer.concat(parts);
  }

  /** Copies a guest file to the host, writing through a temp file so a failed pull leaves nothing half-written. */
  async pullFile(guestPath: string, hostPath: string, maxBytes?: number): Promise<number> {
    const data = await this.readFile(guestPath, maxBytes);
    const tmp = `${hostPath}.altplat-pull-${process.pid}`;
    await fsp.writeFile(tmp, data);
    await fsp.rename(tmp, hostPath);
    return data.length;
  }

  /** Starts a guest program; returns its guest pid. */
  async exec(path: string, opts: GuestExecOptions = {}): Promise<number> {
    const args: Record<string, unknown> = { path, 'capture-output': opts.captureOutput ?? true };
    if (opts.args) args.arg = opts.args;
    if (opts.env) args.env = opts.env;
    if (opts.input) args['input-data'] = opts.input.toString('base64');
    const r = await this.execute<{ pid: number }>('guest-exec', args);
    return r.pid;
  }

  async execStatus(pid: number): Promise<GuestExecStatus> {
    const r = await this.execute<Record<string, unknown>>('guest-exec-status', { pid });
    const dec = (k: string) => (typeof r[k] === 'string' ? Buffer.from(r[k] as string, 'base64') : undefined);
    return {
      exited: r.exited === true,
      exitCode: typeof r.exitcode === 'number' ? r.exitcode : undefined,
      signal: typeof r.signal === 'number' ? r.signal : undefined,
      stdout: dec('out-data'),
      stderr: dec('err-data'),
      outTruncated: r['out-truncated'] === true,
      errTruncated: r['err-truncated'] === true,
    };
  }

  /** Polls guest-exec-status until the program exits (5 ms at first, backing off to `maxPollMs`). */
  async waitExec(pid: number, timeoutMs = 60_000, maxPollMs = 50): Promise<GuestExecStatus> {
    const patience = new Patience(timeoutMs);
    let delay = 5;
    for (;;) {
      const st = await this.execStatus(pid);
      if (st.exited) return st;
      if (patience.expired()) throw new AltplatError('QGA_TIMEOUT', `guest program pid ${pid} still running after ${timeoutMs} ms`, { pid });
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(maxPollMs, delay * 2);
    }
  }

  /** Runs a guest program to completion; throws QGA_COMMAND_FAILED on a non-zero exit, with its stderr. */
  async run(path: string, args: string[] = [], timeoutMs = 60_000): Promise<GuestExecStatus> {
    const pid = await this.exec(path, { args, captureOutput: true });
    const st = await this.waitExec(pid, timeoutMs);
    if (st.exitCode !== 0) {
      throw new AltplatError('QGA_COMMAND_FAILED', `guest command ${[path, ...args].join(' ')} exited with ${st.exitCode ?? `signal ${st.signal}`}: ${st.stderr?.toString().trim() ?? ''}`,
        { command: 'guest-exec', path, exitCode: st.exitCode, signal: st.signal });
    }
    return st;
  }

  /** Asks the guest to power off (qemu-ga runs /sbin/shutdown; the agent does not answer this one). */
  async shutdown(): Promise<void> {
    await this.serial(async () => {
      if (!this.synced) await this.syncNow(5_000, 1_000);
      this.sock.write({ execute: 'guest-shutdown', arguments: { mode: 'powerdown' } });
      this.synced = false;
    });
  }

  async close(): Promise<void> { await this.sock.close(); }
  destroy(): void { this.sock.destroy(); }
}
