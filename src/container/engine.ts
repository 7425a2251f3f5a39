import { execFile, spawnSync } from 'node:child_process';
import { AltplatError } from '../errors.js';
import type { EngineName } from './config.js';

/** What `<engine> container inspect` says about a container, reduced to what the manager uses. */
export interface ContainerState {
  id: string;
  name: string;
  /** created | running | paused | exited | stopped | ... (podman and docker spell them alike) */
  status: string;
  pid: number;
  exitCode: number;
  oomKilled: boolean;
  labels: Record<string, string>;
  /** The cgroup path below the controller mounts (podman), for CPU time. */
  cgroupPath?: string;
}

export interface EngineResult { code: number; stdout: string; stderr: string }

/**
 * The container engine's command line (podman, or docker with a daemon: the same verbs and flags for
 * everything used here). Every call gets the engine's configuration through CONTAINERS_CONF, set here
 * and never taken from the caller's environment, so the platform works whatever the volunteer's
 * session holds.
 */
export class Engine {
  constructor(readonly name: EngineName, readonly confFile?: string, readonly exe: string = name) {}

  get env(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, LC_ALL: 'C' };
    delete env.CONTAINERS_CONF;
    if (this.confFile && this.name === 'podman') env.CONTAINERS_CONF = this.confFile;
    return env;
  }

  run(args: string[], timeoutMs = 120_000): Promise<EngineResult> {
    return new Promise((resolve, reject) => {
      execFile(this.exe, args, { env: this.env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err && typeof (err as NodeJS.ErrnoException).code === 'string') {
          reject(new AltplatError('CONTAINER_ENGINE_MISSING', `cannot run ${this.exe}: ${err.message}`, { exe: this.exe }, { cause: err }));
          return;
        }
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  /** Runs a verb that must succeed; a failure becomes CONTAINER_ENGINE_FAILED with the engine's own words. */
  async must(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== 0) {
      throw new AltplatError('CONTAINER_ENGINE_FAILED', `${this.exe} ${args[0]} ${args[1] ?? ''} failed (${r.code}): ${r.stderr.trim().split('\n').slice(-3).join(' / ')}`,
        { args, code: r.code, stderr: r.stderr });
    }
    return r.stdout;
  }

  /** The container's state, or undefined when no container has that name. */
  async inspect(name: string): Promise<ContainerState | undefined> {
    const r = await this.run(['container', 'inspect', name]);
    if (r.code !== 0) {
      if (/no such (container|object)|no container with name/i.test(r.stderr)) return undefined;
      throw new AltplatError('CONTAINER_ENGINE_FAILED', `${this.exe} container inspect ${name} failed: ${r.stderr.trim()}`, { name });
    }
    const arr = JSON.parse(r.stdout) as Array<{
      Id: string; Name: string;
      State: { Status: string; Pid: number; ExitCode: number; OOMKilled: boolean; CgroupPath?: string };
      Config: { Labels?: Record<string, string> | null };
    }>;
    const c = arr[0];
    if (!c) return undefined;
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      status: c.State.Status,
      pid: c.State.Pid,
      exitCode: c.State.ExitCode,
      oomKilled: c.State.OOMKilled,
      labels: c.Config.Labels ?? {},
      ...(c.State.CgroupPath ? { cgroupPath: c.State.CgroupPath } : {}),
    };
  }

  /** Names of the containers (any state) carrying label KEY=VALUE. */
  async namesWithLabel(key: string, value: string): Promise<string[]> {
    const out = await this.must(['ps', '-a', '--filter', `label=${key}=${value}`, '--format', '{{.Names}}']);
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  /** Kill and remove, waiting for nothing; a container already gone is not an error. */
  async remove(name: string): Promise<void> {
    // (podman's -t 0: no grace period before SIGKILL; docker's rm -f kills at once and has no -t)
    const r = await this.run(this.name === 'podman' ? ['rm', '-f', '-t', '0', name] : ['rm', '-f', name]);
    if (r.code !== 0 && !/no such container|no container with name/i.test(r.stderr)) {
      throw new AltplatError('CONTAINER_ENGINE_FAILED', `${this.exe} rm -f ${name} failed: ${r.stderr.trim()}`, { name });
    }
  }

  /** For process exit handlers, where nothing asynchronous runs any more. */
  runSync(args: string[], timeoutMs = 10_000): number {
    const r = spawnSync(this.exe, args, { env: this.env, timeout: timeoutMs, stdio: 'ignore' });
    return r.status ?? -1;
  }
}
