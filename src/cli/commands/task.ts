import type { Command } from 'commander';
import { UsageError } from '../usage.js';

const OPS = ['suspend', 'resume', 'quit', 'abort'] as const;

/** `altplat task [--data-dir DIR] suspend|resume|quit|abort RESULT` — like `boinccmd --task URL NAME op`. */
export function registerTask(program: Command): void {
  program.command('task')
    .description('suspend, resume, quit or abort a task of a running `altplat run`')
    .argument('<op>', OPS.join('|'))
    .argument('<result>', 'result name')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR or the OS default)')
    .option('--json', 'print the answer as JSON')
    .action(async (op: string, result: string, flags: { dataDir?: string; json?: boolean }) => {
      if (!(OPS as readonly string[]).includes(op)) throw new UsageError(`unknown operation "${op}"; use one of ${OPS.join(', ')}`);
      const [{ dataPaths, resolveDataDir }, { sendTaskCommand }, { AltplatError }] = await Promise.all([
        import('../../paths.js'), import('../../tasks/control-socket.js'), import('../../errors.js'),
      ]);
      const answer = await sendTaskCommand(dataPaths(resolveDataDir(flags.dataDir)).state, { op: op as (typeof OPS)[number], result });
      if (flags.json) process.stdout.write(`${JSON.stringify(answer)}\n`);
      if (!answer.ok) throw new AltplatError(answer.code, answer.error);
      if (!flags.json) process.stdout.write(`${result}: ${op} requested (state ${answer.state})\n`);
    });
}
