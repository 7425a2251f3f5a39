import type { Command } from 'commander';
import { UsageError } from '../usage.js';
import { resolveDataDir } from '../../paths.js'; // the CLI reads BOINC_DATA_DIR; the library never does

interface RequestOptions {
  dataDir?: string;
  output?: string;
  hostPlatform?: string;
}

/**
 * `altplat request [--data-dir DIR] [--host-platform NAME] [-o OUT] FILE` — add the advertised alternate
 * platforms to a scheduler request (FILE `-` = stdin) and print it, or write it atomically to OUT. The
 * request's own platforms count as the host's, unless `--host-platform` names the host's platform
 * instead (as for `list` and `run`); either way the request's own <platform_name> and
 * <alt_platform>s are never rewritten, and a platform it already names is not added again.
 */
export function registerRequest(program: Command): void {
  program
    .command('request')
    .description('add the advertised alternate platforms to a BOINC scheduler request')
    .argument('<file>', 'the scheduler request (sched_request_*.xml); - reads standard input')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR, else the OS default)')
    .option('--host-platform <name>', "decide what is native as a host whose own platform is NAME, instead of the request's platforms (the request's <platform_name> is kept)")
    .option('-o, --output <file>', 'write the patched request here (atomically) instead of to standard output')
    .action(async (file: string, opts: RequestOptions) => {
      const input = await readInput(file);
      const [{ discoverPlatforms, DATA_DIR_ERRORS }, { patchSchedulerRequest, readRequestPlatforms }, { isAltplatError }, { writeFileAtomic }, { terminalProgress, hashCallbacks }] =
        await Promise.all([
          import('../../discovery/discover.js'),
          import('../../scheduler/request.js'),
          import('../../errors.js'),
          import('../../util/atomic.js'),
          import('../../discovery/progress.js'),
        ]);
      const own = readRequestPlatforms(input);
      let names: string[] = [];
      if (opts.hostPlatform !== undefined && opts.hostPlatform !== own.primary) {
        process.stderr.write(`altplat: warning: --host-platform ${opts.hostPlatform} differs from the request's <platform_name> ${own.primary || '(none)'}; `
          + `native platforms are decided for ${opts.hostPlatform}, the request keeps its own <platform_name>\n`);
      }
      if (!own.anonymous) {
        const bar = await terminalProgress();
        try {
          const result = await discoverPlatforms({
            dataDir: resolveDataDir(opts.dataDir),
            ...(opts.hostPlatform !== undefined ? { hostPlatform: opts.hostPlatform } : { hostPlatforms: [own.primary, ...own.alternates] }),
            ...hashCallbacks(bar),
          });
          names = result.advertised;
          for (const w of result.warnings) process.stderr.write(`altplat: warning: ${w}\n`);
        } catch (e) {
          if (isAltplatError(e) && DATA_DIR_ERRORS.includes(e.code)) throw new UsageError(e.message);
          throw e;
        } finally {
          bar.stop();
        }
      }
      const patched = patchSchedulerRequest(input, names);
      for (const w of patched.warnings) process.stderr.write(`altplat: warning: ${w}\n`);
      if (opts.output) {
        try {
          await writeFileAtomic(opts.output, patched.request);
        } catch (e) {
          // Like an unreadable FILE: the volunteer named a place that cannot be written (exit 2, no trace).
          throw new UsageError(`cannot write the patched request to ${opts.output}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
      }
      else await new Promise<void>((resolve, reject) => process.stdout.write(patched.request, (err) => (err ? reject(err) : resolve())));
      const summary = own.anonymous
        ? 'the project uses the anonymous platform: nothing added'
        : patched.added.length > 0
          ? `added ${patched.added.length} alternate platform${patched.added.length === 1 ? '' : 's'}: ${patched.added.join(', ')}`
          : 'no alternate platform to add';
      process.stderr.write(`altplat: ${summary} (request platforms: ${[own.primary, ...own.alternates].join(', ')})${opts.output ? `; wrote ${opts.output}` : ''}\n`);
    });
}

async function readInput(file: string): Promise<Buffer> {
  const { promises: fsp } = await import('node:fs');
  if (file === '-') {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  try {
    return await fsp.readFile(file);
  } catch (e) {
    throw new UsageError(`cannot read the scheduler request ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
