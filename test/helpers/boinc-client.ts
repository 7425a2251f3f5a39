import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { AUTHENTICATOR, type FakeProject } from './fake-project.js';

const run = promisify(execFile);

/**
 * Debian's real boinc-client (7.20.5) as a plain process in a temp data dir, attached to a fake project
 * through its account file, reporting results at once (cc_config report_results_immediately).
 */
export interface RealClient {
  dir: string;
  port: number;
  child: ChildProcess;
  log: () => string;
  cmd(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const p = (s.address() as net.AddressInfo).port; s.close(() => resolve(p)); });
  });
}

export async function startRealClient(dir: string, project: FakeProject): Promise<RealClient> {
  await fsp.mkdir(dir, { recursive: true });
  const password = 'oracle';
  await fsp.writeFile(path.join(dir, 'gui_rpc_auth.cfg'), password);
  await fsp.writeFile(path.join(dir, 'cc_config.xml'), `<cc_config>
<log_flags>
<task_debug>1</task_debug>
<sched_op_debug>1</sched_op_debug>
</log_flags>
<options>
<report_results_immediately>1</report_results_immediately>
<dont_contact_ref_site>1</dont_contact_ref_site>
<ncpus>12</ncpus>
<max_file_xfers>16</max_file_xfers>
<max_file_xfers_per_project>16</max_file_xfers_per_project>
</options>
</cc_config>
`);
  await fsp.writeFile(path.join(dir, `account_${project.projectDirName}.xml`),
    `<account>\n    <master_url>${project.masterUrl}</master_url>\n    <authenticator>${AUTHENTICATOR}</authenticator>\n</account>\n`);
  const port = await freePort();
  let out = '';
  const child = spawn('boinc', ['--dir', dir, '--gui_rpc_port', String(port), '--no_gpus', '--skip_cpu_benchmarks', '--allow_multiple_clients'],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const cmd = async (args: string[]) => (await run('boinccmd', ['--host', `127.0.0.1:${port}`, '--passwd', password, ...args])).stdout;
  return {
    dir, port, child, log: () => out, cmd,
    async stop() {
      if (child.exitCode !== null || child.signalCode) return;
      const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      try { await cmd(['--quit']); } catch { child.kill('SIGTERM'); }
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await gone;
      clearTimeout(t);
    },
  };
}
