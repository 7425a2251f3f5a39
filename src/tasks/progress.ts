import cliProgress from 'cli-progress';
import { ProcessState } from '../ipc/contract.js';
import type { AltplatClient } from './client.js';
import type { ProgressEvent } from './events.js';

/** Progress bars on a terminal (stderr): fraction done, elapsed, state, one bar per running task. */
export function showProgress(client: AltplatClient): () => void {
  const multi = new cliProgress.MultiBar({
    stream: process.stderr, hideCursor: true, clearOnComplete: false,
    format: ' {name} [{bar}] {percentage}% | {elapsed}s | {state}',
  }, cliProgress.Presets.shades_classic);
  const bars = new Map<string, cliProgress.SingleBar>();
  const onProgress = (p: ProgressEvent) => {
    let bar = bars.get(p.task);
    const payload = { name: p.task, elapsed: p.elapsed.toFixed(0), state: ProcessState[p.state] ?? String(p.state) };
    if (!bar) {
      bar = multi.create(100, 0, payload);
      bars.set(p.task, bar);
    }
    bar.update(Math.round(p.fractionDone * 100), payload);
  };
  client.on('progress', onProgress);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    client.off('progress', onProgress);
    multi.stop();
  };
}
