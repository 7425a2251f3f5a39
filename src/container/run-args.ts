import { shQuote, splitCommandLine } from '../manager/cmdline.js';
import { checkOpenName, GUEST_STDERR, GUEST_STDOUT } from '../manager/guest-job.js';
import type { JobDescription } from '../job/jobfile.js';
import type { ContainerConfig } from './config.js';
import { LABEL_DATA_DIR, LABEL_PLATFORM, LABEL_RESULT, LABEL_SLOT } from './names.js';

/** The file the program's wrapper waits for before it starts the program (see createArgs). */
export const GO_FILE = '.altplat_go';
/**
 * The program's exit status, written by the wrapper when the program ends. Its absence when the
 * container has stopped means the container itself was killed (its first process, the wrapper, got
 * SIGKILL from outside), not that the program ended: the kernel's OOM killer picks the big program,
 * never the small shell, so a program killed over its memory limit still leaves its status here.
 */
export const STATUS_FILE = '.altplat_status';

export interface CreateInput {
  name: string;
  image: string;
  config: ContainerConfig;
  job: JobDescription;
  /** Host folder bound read-write at guestDir: the program's working directory and its outputs. */
  workDir: string;
  /** Every file the program reads, resolved on the host (soft-link files followed), by open name. */
  inputs: Array<{ openName: string; host: string }>;
  labels: { dataDir: string; slot: string; result: string; platform: string };
  memoryBytes: number;
  cpus: number;
  /** uid:gid the program runs as: the client's own, so its files in the slot are the client's. */
  user: string;
  /**
   * What holds glibc (GLIBC_TUNABLES) and CPUID-reading libraries to the platform's virtual CPU: a
   * container runs on the host's processor, which it cannot hide (src/definition/cpu-baseline.ts).
   */
  baselineEnv: Readonly<Record<string, string>>;
}

/** `--mount` cannot quote: a path with a comma (or a newline) would change the mount's meaning. */
function mountPath(p: string): string {
  if (/[,\n\r]/.test(p)) throw Object.assign(new Error(`path '${p}' cannot be bound into a container (it holds a comma)`), { code: 'CONTAINER_BAD_PATH' });
  return p;
}

/**
 * `<engine> create` arguments for a task. The isolation is the issue's list: no network unless the
 * platform asks for it, a read-only root, every capability dropped, no new privileges, pids, memory
 * (no swap) and CPU limits from rsc_memory_bound and avg_ncpus, no log driver (the program's streams go
 * to files in its job folder, as in the VM). Inputs are bound read-only at their open names inside the
 * job folder — the same paths the VM's guest uses (guest_dir).
 *
 * The container's first process is a busybox shell that lowers its own priority (renice 19), waits for
 * GO_FILE, runs the program and records its exit status in STATUS_FILE: the manager sets SCHED_IDLE on it from the host in between (busybox has no chrt),
 * so the program and everything it forks start at the lowest priority — a container lives outside the
 * manager's process group and would otherwise run at the engine's priority.
 */
export function createArgs(c: CreateInput): string[] {
  const g = c.config.guestDir;
  const argv = [`./${checkOpenName(c.job.mainProgram)}`, ...splitCommandLine(c.job.commandLine)];
  const script = `renice -n 19 -p $$ >/dev/null 2>&1; while [ ! -e ${GO_FILE} ]; do usleep 20000; done; ` +
    `${argv.map(shQuote).join(' ')} >${GUEST_STDOUT} 2>>${GUEST_STDERR}; ` +
    `s=$?; echo $s > ${STATUS_FILE}.new && mv -f ${STATUS_FILE}.new ${STATUS_FILE}; exit $s`;
  const mb = memoryLimitMb(c.memoryBytes);
  const args = [
    'create', '--name', c.name,
    '--label', `${LABEL_DATA_DIR}=${c.labels.dataDir}`,
    '--label', `${LABEL_SLOT}=${c.labels.slot}`,
    '--label', `${LABEL_RESULT}=${c.labels.result}`,
    '--label', `${LABEL_PLATFORM}=${c.labels.platform}`,
    '--log-driver', 'none',
    `--network=${c.config.network ? 'bridge' : 'none'}`,
    '--read-only', '--cap-drop=all', '--security-opt=no-new-privileges',
    '--pids-limit', String(c.config.pidsLimit),
    '--memory', `${mb}m`, '--memory-swap', `${mb}m`,
    '--cpus', String(Math.max(0.01, c.cpus)),
    '--user', c.user,
    '--hostname', 'altplat',
    '--workdir', g,
    '--env', 'PATH=/usr/bin:/bin:/usr/sbin:/sbin',
    '--env', `HOME=${g}`,
    '--env', 'LD_LIBRARY_PATH=.',
    ...Object.entries(c.baselineEnv).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
    '--mount', `type=bind,source=${mountPath(c.workDir)},destination=${g}`,
  ];
  for (const i of c.inputs) {
    args.push('--mount', `type=bind,source=${mountPath(i.host)},destination=${mountPath(`${g}/${checkOpenName(i.openName)}`)},readonly`);
  }
  args.push(c.image, '/bin/sh', '-c', script);
  return args;
}

/** The container's memory limit in MiB: rsc_memory_bound, but never below 32 MiB (the shell and loader need some). */
export function memoryLimitMb(bytes: number): number {
  return Math.max(32, Math.ceil(bytes / (1 << 20)));
}
