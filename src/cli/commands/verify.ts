import type { Command } from 'commander';
import type { VerifyResult } from '../../discovery/verify.js';
import { UsageError } from '../usage.js';
import { resolveDataDir } from '../../paths.js'; // the CLI reads BOINC_DATA_DIR; the library never does

interface VerifyFlags {
  dataDir?: string;
  json?: boolean;
}

/**
 * `altplat verify [--data-dir DIR] [NAME] [--json]` — re-hash installed platforms (all, or NAME),
 * bypassing the hash cache. Exit 0 all sound, 1 any mismatch or broken definition, 2 usage / data dir /
 * no platform NAME.
 */
export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('re-hash installed platforms (bypassing the cache) and report every file that does not match')
    .argument('[name]', 'only this platform')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR, else the OS default)')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, flags: VerifyFlags) => {
      const [{ verifyPlatforms }, { DATA_DIR_ERRORS }, { terminalProgress, hashCallbacks }, { isAltplatError }] = await Promise.all([
        import('../../discovery/verify.js'),
        import('../../discovery/discover.js'),
        import('../../discovery/progress.js'),
        import('../../errors.js'),
      ]);
      const bar = await terminalProgress({ minBytes: 0 });
      let result: VerifyResult;
      try {
        result = await verifyPlatforms({ dataDir: resolveDataDir(flags.dataDir), name, ...hashCallbacks(bar, 'verifying sha256') });
      } catch (e) {
        if (isAltplatError(e) && (DATA_DIR_ERRORS.includes(e.code) || e.code === 'VERIFY_NOT_FOUND')) throw new UsageError(e.message);
        throw e;
      } finally {
        bar.stop();
      }
      if (flags.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
      else process.stdout.write(renderVerify(result));
      if (!result.ok) process.exitCode = 1;
    });
}

export function renderVerify(r: VerifyResult): string {
  const lines: string[] = [`data dir: ${r.dataDir}`, ''];
  if (r.platforms.length === 0) lines.push('no platform folders');
  for (const p of r.platforms) {
    const hashed = p.files.filter((f) => f.expectedSha256 !== undefined && f.sha256 !== undefined).length;
    lines.push(`${p.name}: ${p.verdict === 'ok' ? `ok (${p.files.length} listed files, ${hashed} re-hashed)` : p.verdict.toUpperCase()}`);
    for (const x of p.reasons) lines.push(`    ${x.code}: ${x.message}`);
  }
  lines.push('');
  lines.push(`${r.ok ? 'all platforms verified' : 'verification FAILED'}: ${r.hashedFiles} files, ${(r.hashedBytes / (1024 * 1024)).toFixed(1)} MiB read`);
  return lines.join('\n') + '\n';
}
