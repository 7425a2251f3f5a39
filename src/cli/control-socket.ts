import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { ensureOwnedDir } from '../util/owned-dir.js';

/**
 * `<dataDir>/altplat/control.sock`: how `altplat task` reaches a running `altplat run`. The CLI's, not
 * the library's: an embedding client has its own control path (AltplatClient.open's `controlSocket`
 * defaults to false; `altplat run` turns it on).
 */
export const CONTROL_SOCKET = 'control.sock';

export type TaskOp = 'suspend' | 'resume' | 'quit' | 'abort';
export const TASK_OPS: readonly TaskOp[] = ['suspend', 'resume', 'quit', 'abort'];

/** `project`: the master URL, for a result name two projects share (`altplat task --project URL`). */
export interface TaskRequest { op: TaskOp; result: string; project?: string }
export type TaskResponse = { ok: true; result: string; state: string } | { ok: false; code: string; error: string };

const MAX_LINE = 64 * 1024;

function connect(sock: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Serve JSON-lines requests `{"op":"quit","result":"NAME"}` → `{"ok":true,...}` on `sock`. If another
 * process answers on it, this one refuses (RUN_ALREADY_ACTIVE); a stale socket left by a killed run is
 * removed. (The data dir's lock is the client's fcntl lock, DATA_DIR_IN_USE, taken before this.)
 */
export async function serveControl(sock: string, handle: (req: TaskRequest) => Promise<TaskResponse>): Promise<{ close(): Promise<void>; path: string }> {
  const stateDir = path.dirname(sock);
  // sockaddr_un holds 108 bytes including the NUL on Linux.
  if (Buffer.byteLength(sock) > 107) {
    throw new AltplatError('CONTROL_SOCKET_PATH_TOO_LONG', `the control socket path ${sock} is longer than the 107 bytes a unix socket allows; use a shorter data dir path`);
  }
  await ensureOwnedDir(path.dirname(stateDir), path.basename(stateDir)); // i9a: a real folder, never a link
  try {
    const s = await connect(sock);
    s.destroy();
    throw new AltplatError('RUN_ALREADY_ACTIVE', `another altplat run is active on this data dir (${sock} answers)`);
  } catch (e) {
    if (e instanceof AltplatError) throw e;
    const code = errnoCode(e);
    if (code === 'ECONNREFUSED') await fsp.unlink(sock);
    else if (code !== 'ENOENT') throw e;
  }
  const server = net.createServer((conn) => {
    let buf = '';
    conn.setEncoding('utf8');
    conn.on('error', () => conn.destroy());
    conn.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE) { conn.destroy(); return; }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        void answer(line).then((r) => conn.write(`${JSON.stringify(r)}\n`));
      }
    });
  });
  const answer = async (line: string): Promise<TaskResponse> => {
    let req: TaskRequest;
    try {
      req = JSON.parse(line) as TaskRequest;
    } catch {
      return { ok: false, code: 'TASK_BAD_REQUEST', error: 'request is not JSON' };
    }
    if (!TASK_OPS.includes(req.op) || typeof req.result !== 'string' || (req.project !== undefined && typeof req.project !== 'string')) {
      return { ok: false, code: 'TASK_BAD_REQUEST', error: `unknown operation ${String(req.op)}` };
    }
    try {
      return await handle(req);
    } catch (e) {
      return { ok: false, code: e instanceof AltplatError ? e.code : 'TASK_FAILED', error: (e as Error).message };
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve());
  });
  return {
    path: sock,
    close: () => new Promise<void>((resolve) => server.close(() => {
      fsp.unlink(sock).catch(() => undefined).finally(resolve);
    })),
  };
}

/** Client side, used by `altplat task`. */
export async function sendTaskCommand(stateDir: string, req: TaskRequest, timeoutMs = 10_000): Promise<TaskResponse> {
  const sock = path.join(stateDir, CONTROL_SOCKET);
  let s: net.Socket;
  try {
    s = await connect(sock);
  } catch (e) {
    throw new AltplatError('TASK_NO_RUNNER', `no altplat run is active on this data dir (${sock}: ${errnoCode(e) ?? (e as Error).message})`);
  }
  return new Promise<TaskResponse>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { s.destroy(); reject(new AltplatError('TASK_TIMEOUT', 'altplat run did not answer')); }, timeoutMs);
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        s.end();
        try { resolve(JSON.parse(buf.slice(0, nl)) as TaskResponse); } catch (e) { reject(e); }
      }
    });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
    s.write(`${JSON.stringify(req)}\n`);
  });
}
