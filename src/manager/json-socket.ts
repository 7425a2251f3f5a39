import * as net from 'node:net';
import { Patience } from './patience.js';
import { AltplatError } from '../errors.js';

/**
 * A unix-socket connection that carries one JSON object per line, as both QMP and qemu-guest-agent
 * speak. Incoming objects are handed to `onMessage`; raw bytes before a JSON object (the agent's 0xFF
 * sync marker) are dropped here, which is what the guest-sync-delimited handshake asks of the host.
 */
export class JsonLineSocket {
  private buf: Buffer = Buffer.alloc(0);
  private closedErr?: Error;
  private closeWaiters: Array<() => void> = [];
  onMessage: (msg: Record<string, unknown>) => void = () => {};
  onClose: (err: Error) => void = () => {};

  private constructor(private readonly sock: net.Socket, private readonly what: string) {
    sock.on('data', (d: Buffer) => this.feed(d));
    const closed = (e?: Error) => {
      if (this.closedErr) return;
      this.closedErr = e ?? new AltplatError('VM_SOCKET_CLOSED', `${this.what} connection closed`);
      this.onClose(this.closedErr);
      for (const w of this.closeWaiters.splice(0)) w();
    };
    sock.on('error', (e) => closed(new AltplatError('VM_SOCKET_CLOSED', `${this.what} connection failed: ${e.message}`, undefined, { cause: e })));
    sock.on('close', () => closed());
  }

  /** Connects, retrying while the socket file does not exist yet or nobody listens (QEMU starting). */
  static async connect(socketPath: string, what: string, timeoutMs: number): Promise<JsonLineSocket> {
    // QEMU creates the socket as it starts: a QEMU starved of CPU (nice 19) is slow, not broken.
    const patience = new Patience(timeoutMs);
    for (;;) {
      try {
        const sock = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.createConnection({ path: socketPath });
          s.once('connect', () => { s.removeAllListeners('error'); resolve(s); });
          s.once('error', reject);
        });
        return new JsonLineSocket(sock, what);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || patience.expired()) {
          throw new AltplatError('VM_SOCKET_CONNECT', `cannot connect to ${what} at ${socketPath}: ${(e as Error).message}`, { socketPath }, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  get closed(): Error | undefined { return this.closedErr; }

  write(obj: unknown, prefix?: Buffer): void {
    if (this.closedErr) throw this.closedErr;
    const line = Buffer.from(JSON.stringify(obj) + '\n');
    this.sock.write(prefix ? Buffer.concat([prefix, line]) : line);
  }

  private feed(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    let nl: number;
    while ((nl = this.buf.indexOf(0x0a)) >= 0) {
      let line = this.buf.subarray(0, nl);
      this.buf = this.buf.subarray(nl + 1);
      // Anything before the first '{' is noise for us (0xFF sync bytes, stray output of a restarted agent).
      const start = line.indexOf(0x7b);
      if (start < 0) continue;
      line = line.subarray(start);
      let msg: unknown;
      try {
        msg = JSON.parse(line.toString('utf8'));
      } catch {
        continue; // a partial line from a half-written reply after a guest restore; the caller resyncs
      }
      if (msg && typeof msg === 'object') this.onMessage(msg as Record<string, unknown>);
    }
  }

  async close(): Promise<void> {
    if (this.closedErr) return;
    const done = new Promise<void>((r) => this.closeWaiters.push(r));
    this.sock.end();
    const t = setTimeout(() => this.sock.destroy(), 500);
    await done;
    clearTimeout(t);
  }

  destroy(): void {
    this.sock.destroy();
  }
}
