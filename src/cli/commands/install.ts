import type { Command } from 'commander';
import { UsageError } from '../usage.js';
import { resolveDataDir } from '../../paths.js'; // the CLI reads BOINC_DATA_DIR; the library never does

interface InstallFlags {
  dataDir?: string;
  force?: boolean;
}

/**
 * `altplat install [--data-dir DIR] [--force] PATH` — copy a platform folder into
 * `<data>/alt_platforms/<name>/`, checking sizes and hashes while copying (progress on a terminal).
 * Exit 0 installed, 1 refused (invalid folder, mismatch, already installed), 2 usage / data dir.
 */
export function registerInstall(program: Command): void {
  program
    .command('install')
    .description('install a platform folder into <data dir>/alt_platforms/<name>/, verifying sizes and sha256 while copying')
    .argument('<path>', 'the platform folder (with its alt_platform.xml)')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR, else the OS default)')
    .option('--force', 'replace an installed platform of the same name')
    .action(async (source: string, flags: InstallFlags) => {
      const [{ installPlatform }, { discoverPlatforms, DATA_DIR_ERRORS }, { terminalProgress }, { isAltplatError }] = await Promise.all([
        import('../../discovery/install.js'),
        import('../../discovery/discover.js'),
        import('../../discovery/progress.js'),
        import('../../errors.js'),
      ]);
      const bar = await terminalProgress({ minBytes: 0 });
      let result;
      try {
        result = await installPlatform(source, {
          dataDir: resolveDataDir(flags.dataDir),
          force: flags.force,
          onStart: (total) => bar.start(total, 'copying and hashing'),
          onProgress: (done, file) => bar.update(done, file),
        });
      } catch (e) {
        if (isAltplatError(e) && (DATA_DIR_ERRORS.includes(e.code) || e.code === 'INSTALL_SOURCE')) throw new UsageError(e.message);
        throw e;
      } finally {
        bar.stop();
      }
      const mib = (result.bytes / (1024 * 1024)).toFixed(1);
      process.stdout.write(`${result.replaced ? 'replaced' : 'installed'} ${result.name} ${result.version} in ${result.dir}: ` +
        `${result.files} files, ${mib} MiB, ${result.verified} listed file${result.verified === 1 ? '' : 's'} verified (size and sha256 as listed)\n`);
      for (const w of result.warnings) process.stderr.write(`altplat: warning: ${w}\n`);
      const after = await discoverPlatforms({ dataDir: resolveDataDir(flags.dataDir), only: [result.name] });
      const p = after.platforms[0];
      if (p) {
        const how = p.status === 'ok'
          ? p.native ? 'ok, but not advertised: this host runs that platform natively' : 'ok: advertised to projects'
          : `${p.status}: ${p.reasons.map((x) => `${x.code}: ${x.message}`).join('; ')}`;
        process.stdout.write(`status on this host: ${how}\n`);
      }
    });
}
