import type { Command } from 'commander';
import { UsageError } from '../usage.js';

const OPS = ['suspend', 'resume', 'quit', 'abort'] as const;

/**
 * `altplat task [--data-dir DIR] [--project URL] suspend|resume|quit|abort RESULT` — like `boinccmd
 * --task URL NAME op`, for the tasks of a running `altplat run`. `--project` names the project when two
 * share the result name. Suspend follows BOINC's rule (docs/EMBEDDING.md): a task that has checkpointed
 * is removed from memory and restarted from its checkpoint on resume.
 */
export function registerTask(program: Command): void {
  program.command('task')
    .description('suspend, resume, quit or abort a task of a running `altplat run`')
    .argument('<op>', OPS.join('|'))
    .argument('<result>', 'result name')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR or the OS default)')
    .option('--project <url>', 'the project\'s master URL, for a result name two projects share')
    .option('--json', 'print the answer as JSON')
    .action(async (op: string, result: string, flags: { dataDir?: string; json?: boolean; project?: string }) => {
      if (!(OPS as readonly string[]).includes(op)) throw new UsageError(`unknown operation "${op}"; use one of ${OPS.join(', ')}`);
      const [{ dataPaths, resolveDataDir }, { sendTaskCommand }, { AltplatError }] = await Promise.all([
        import('../../paths.js'), import('../control-socket.js'), import('../../errors.js'),
      ]);
      const answer = await sendTaskCommand(dataPaths(resolveDataDir(flags.dataDir)).state,
        { op: op as (typeof OPS)[number], result, ...(flags.project !== undefined ? { project: flags.project } : {}) });
      if (flags.json) process.stdout.write(`${JSON.stringify(answer)}\n`);
      if (!answer.ok) throw new AltplatError(answer.code as import('../../errors.js').AltplatErrorCode, answer.error);
      if (!flags.json) process.stdout.write(`${result}: ${op} requested (state ${answer.state})\n`);
    });
}
