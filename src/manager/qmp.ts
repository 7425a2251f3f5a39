import { AltplatError } from '../errors.js';
import { JsonLineSocket } from './json-socket.js';
import { patientTimeout } from './patience.js';

/** An asynchronous QMP event (`{"event": NAME, "data": {...}, "timestamp": {...}}`). */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
}

export interface QmpOptions {
  /** How long to keep retrying the connection while QEMU starts (ms). */
  connectTimeoutMs?: number;
  /** Default per-command timeout (ms). */
  commandTimeoutMs?: number;
}

type Pending = { resolve: (v: unknown) => void; reject: (e: Error) => void; cancelTimer: () => void; command: string };

/**
 * QEMU Machine Protocol client over a unix socket: greeting + `qmp_capabilities`, commands with
 * per-command timeouts, an event log that waiters can match (events that arrived before the waiter
 * count, so no race between a command and its event), HMP passthrough with error detection, and
 * block jobs (snapshot-save/-load/-delete) run to completion.
 *
 * Errors are AltplatError `QMP_COMMAND_FAILED` (QEMU answered with an error: class and description in
 * the message), `QMP_TIMEOUT`, `QMP_HMP_ERROR`, `QMP_JOB_FAILED`, `VM_SOCKET_CLOSED`.
 */
export class QmpClient {
  private nextId = 1;
  private pending = new Map<string, Pending>();
  private events: QmpEvent[] = [];
  private eventWaiters = new Set<() => void>();
  greeting?: Record<string, unknown>;

  private constructor(private readonly sock: JsonLineSocket, private readonly commandTimeoutMs: number) {
    sock.onMessage = (m) => this.onMessage(m);
    sock.onClose = (err) => {
      for (const [id, p] of this.pending) {
        p.cancelTimer();
        p.reject(new AltplatError('VM_SOCKET_CLOSED', `QMP connection closed while waiting for '${p.command}'`, { command: p.command }, { cause: err }));
        this.pending.delete(id);
      }
      for (const w of this.eventWaiters) w();
    };
  }

  static async connect(socketPath: string, opts: QmpOptions = {}): Promise<QmpClient> {
    const sock = await JsonLineSocket.connect(socketPath, 'QMP', opts.connectTimeoutMs ?? 10_000);
    const client = new QmpClient(sock, opts.commandTimeoutMs ?? 30_000);
    try {
      client.greeting = await client.waitGreeting(opts.connectTimeoutMs ?? 10_000);
      await client.execute('qmp_capabilities');
    } catch (e) {
      sock.destroy();
      throw e;
    }
    return client;
  }

  private greetingWaiter?: (g: Record<string, unknown>) => void;
  private waitGreeting(timeoutMs: number): Promise<Record<string, unknown>> {
    if (this.greeting) return Promise.resolve(this.greeting);
    return new Promise((resolve, reject) => {
      const cancel = patientTimeout(timeoutMs, () => reject(new AltplatError('QMP_TIMEOUT', `no QMP greeting within ${timeoutMs} ms`)));
      this.greetingWaiter = (g) => { cancel(); resolve(g); };
    });
  }

  private onMessage(m: Record<string, unknown>): void {
    if ('QMP' in m) {
      this.greeting = m;
      this.greetingWaiter?.(m);
      return;
    }
    if (typeof m.event === 'string') {
      this.events.push({ event: m.event, data: (m.data as Record<string, unknown>) ?? {} });
      if (this.events.length > 1000) this.events.splice(0, this.events.length - 1000);
      for (const w of this.eventWaiters) w();
      return;
    }
    const id = typeof m.id === 'string' ? m.id : undefined;
    const p = id !== undefined ? this.pending.get(id) : undefined;
    if (!p || id === undefined) return;
    this.pending.delete(id);
    p.cancelTimer();
    if ('error' in m) {
      const err = m.error as { class?: string; desc?: string };
      p.reject(new AltplatError('QMP_COMMAND_FAILED', `QMP command '${p.command}' failed: ${err.class ?? 'Error'}: ${err.desc ?? JSON.stringify(err)}`,
        { command: p.command, errorClass: err.class, desc: err.desc }));
    } else {
      p.resolve(m.return);
    }
  }

  /** Runs one QMP command and returns its `return` value. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, timeoutMs = this.commandTimeoutMs): Promise<T> {
    const id = `altplat-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      const cancelTimer = patientTimeout(timeoutMs, () => {
        this.pending.delete(id);
        reject(new AltplatError('QMP_TIMEOUT', `QMP command '${command}' got no answer within ${timeoutMs} ms`, { command }));
      });
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, cancelTimer, command });
      try {
        this.sock.write(args ? { execute: command, arguments: args, id } : { execute: command, id });
      } catch (e) {
        cancelTimer();
        this.pending.delete(id);
        reject(e as Error);
      }
    });
  }

  /**
   * Human monitor command through QMP. HMP reports failure as a *successful* QMP reply whose string
   * holds the error text (e.g. savevm's "Error: no block device can store vmstate"), so any output
   * starting with "Error" is turned into QMP_HMP_ERROR.
   */
  async hmp(commandLine: string, timeoutMs = this.commandTimeoutMs): Promise<string> {
    const out = await this.execute<string>('human-monitor-command', { 'command-line': commandLine }, timeoutMs);
    const text = typeof out === 'string' ? out : '';
    if (/^\s*Error\b/i.test(text)) {
      throw new AltplatError('QMP_HMP_ERROR', `HMP '${commandLine}' failed: ${text.trim()}`, { command: commandLine, output: text });
    }
    return text;
  }

  /** Events seen so far (oldest first), from the start of the connection or the last `clearEvents`. */
  seenEvents(): readonly QmpEvent[] { return this.events; }
  clearEvents(): void { this.events = []; }

  /** Resolves with the first event (already seen or future) matching `name` and `pred`. */
  waitEvent(name: string, pred: (data: Record<string, unknown>) => boolean = () => true, timeoutMs = this.commandTimeoutMs): Promise<QmpEvent> {
    return new Promise((resolve, reject) => {
      let cancelTimer = (): void => {};
      const check = () => {
        const ev = this.events.find((e) => e.event === name && pred(e.data));
        if (ev) {
          finish();
          resolve(ev);
        } else if (this.sock.closed) {
          finish();
          reject(new AltplatError('VM_SOCKET_CLOSED', `QMP connection closed while waiting for event ${name}`, { event: name }));
        }
      };
      const finish = () => { cancelTimer(); this.eventWaiters.delete(check); };
      cancelTimer = patientTimeout(timeoutMs, () => { finish(); reject(new AltplatError('QMP_TIMEOUT', `no QMP event ${name} within ${timeoutMs} ms`, { event: name })); });
      this.eventWaiters.add(check);
      check();
    });
  }

  /**
   * Starts a QMP job command (`snapshot-save`, `snapshot-load`, `snapshot-delete`) with `job-id`,
   * waits until it concludes, dismisses it and throws QMP_JOB_FAILED with QEMU's error text if it failed.
   */
  async runJob(command: string, args: Record<string, unknown> & { 'job-id': string }, timeoutMs = 300_000): Promise<void> {
    const jobId = args['job-id'];
    await this.execute(command, args);
    await this.waitEvent('JOB_STATUS_CHANGE', (d) => d.id === jobId && d.status === 'concluded', timeoutMs);
    const jobs = await this.execute<Array<{ id: string; error?: string }>>('query-jobs');
    const job = jobs.find((j) => j.id === jobId);
    await this.execute('job-dismiss', { id: jobId });
    // Forget this job's events so a later job reusing the id does not match them.
    this.events = this.events.filter((e) => !(e.event === 'JOB_STATUS_CHANGE' && e.data.id === jobId));
    if (job?.error) {
      throw new AltplatError('QMP_JOB_FAILED', `QMP job '${command}' (${jobId}) failed: ${job.error}`, { command, jobId, error: job.error });
    }
  }

  async queryStatus(): Promise<string> {
    const r = await this.execute<{ status: string }>('query-status');
    return r.status;
  }

  async close(): Promise<void> {
    await this.sock.close();
  }

  destroy(): void { this.sock.destroy(); }
}
