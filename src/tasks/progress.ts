import cliProgress from 'cli-progress';
import { ProcessState } from '../ipc/contract.js';
import type { ProgressEvent, TaskLifecycle } from './runner.js';

/** Progress bars on a terminal (stderr): fraction done, elapsed, state, one bar per running task. */
export function showProgress(lc: TaskLifecycle): () => void {
  const multi = new cliProgress.MultiBar({
    stream: process.stderr, hideCursor: true, clearOnComplete: false,
    format: ' {name} [{bar}] {percentage}% | {elapsed}s | {state}',
  }, cliProgress.Presets.shades_classic);
  const bars = new Map<string, cliProgress.SingleBar>();
  const onProgress = (p: ProgressEvent) => {
    let bar = bars.get(p.result);
    const payload = { name: p.result, elapsed: p.elapsed.toFixed(0), state: ProcessState[p.state] ?? String(p.state) };
    if (!bar) {
      bar = multi.create(100, 0, payload);
      bars.set(p.result, bar);
    }
    bar.update(Math.round(p.fractionDone * 100), payload);
  };
  lc.on('progress', onProgress);
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    lc.off('progress', onProgress);
    multi.stop();
  };
}
