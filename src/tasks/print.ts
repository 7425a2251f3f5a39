import type { ResultReport } from './report.js';

/** Human-readable `altplat run` report: one block per result. */
export function printRunReport(results: ResultReport[], out: NodeJS.WritableStream): void {
  if (results.length === 0) {
    out.write('no tasks to run\n');
    return;
  }
  for (const r of results) {
    const head = [`${r.name}: ${r.outcome}`];
    if (r.exitStatus !== null) head.push(`exit status ${r.exitStatus}`);
    if (r.platform) head.push(`platform ${r.platform}${r.kind ? ` (${r.kind})` : ''}`);
    if (r.slot !== null) head.push(`slot ${r.slot}`);
    if (r.outcome !== 'rejected') head.push(`${r.elapsed.toFixed(1)} s`);
    if (r.restarts > 0) head.push(`${r.restarts} restart(s)`);
    if (r.previouslyFinished) head.push('finished by an earlier run');
    out.write(`${head.join(', ')}\n`);
    if (r.reason) out.write(`  reason: ${r.reason}${r.code ? ` [${r.code}]` : ''}\n`);
    if (r.message) out.write(`  message from task: ${r.message}\n`);
    for (const o of r.outputs) {
      out.write(o.status === 0 ? `  output ${o.name}: ${o.nbytes} bytes, md5 ${o.md5}, ${o.path}\n` : `  output ${o.name}: error ${o.status}\n`);
    }
    for (const w of r.warnings) out.write(`  warning: ${w}\n`);
  }
}
