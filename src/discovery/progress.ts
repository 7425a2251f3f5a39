import type { HashProgress } from '../definition/validate.js';

/**
 * A terminal progress bar (cli-progress, on stderr) for long sha256 passes and copies. Only on a TTY,
 * and only when the work is big enough to be worth watching; otherwise every method is a no-op.
 * `prepare()` loads cli-progress ahead of time, because the scan's callbacks are synchronous.
 */
export interface ProgressBar {
  start(totalBytes: number, label: string): void;
  update(bytesDone: number, file: string): void;
  stop(): void;
}

type CliProgress = typeof import('cli-progress');

export async function terminalProgress(opts: { minBytes?: number; stream?: NodeJS.WriteStream } = {}): Promise<ProgressBar> {
  const stream = opts.stream ?? process.stderr;
  const minBytes = opts.minBytes ?? 32 * 1024 * 1024;
  if (!stream.isTTY) return { start() {}, update() {}, stop() {} };
  const mod = (await import('cli-progress')) as CliProgress & { default?: CliProgress };
  const { SingleBar, Presets } = mod.default ?? mod;
  let bar: InstanceType<CliProgress['SingleBar']> | undefined;
  let total = 0;
  return {
    start(totalBytes, label) {
      if (totalBytes < minBytes) return;
      total = totalBytes;
      bar = new SingleBar({
        stream,
        format: `${label} {bar} {percentage}% | {done}/{all} MiB | {file}`,
        hideCursor: true,
        clearOnComplete: true,
        etaBuffer: 50,
      }, Presets.shades_classic);
      bar.start(totalBytes, 0, { done: '0', all: mib(totalBytes), file: '' });
    },
    update(bytesDone, file) {
      bar?.update(Math.min(bytesDone, total), { done: mib(bytesDone), all: mib(total), file });
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

function mib(n: number): string {
  return (n / (1024 * 1024)).toFixed(1);
}

/** Wire a ProgressBar to discovery's hash callbacks. */
export function hashCallbacks(bar: ProgressBar, label = 'checking sha256') {
  return {
    onHashStart: (bytesTotal: number) => bar.start(bytesTotal, label),
    onProgress: (p: HashProgress) => bar.update(p.bytesDone, `${p.platform}/${p.file}`),
  };
}
