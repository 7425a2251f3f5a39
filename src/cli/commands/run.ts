import type { Command } from 'commander';
import { UsageError } from '../usage.js';

interface RunFlags {
  dataDir?: string;
  json?: boolean;
  maxTasks?: string;
  hostPlatform?: string;
  files?: string;
  masterUrl?: string;
}

/**
 * `altplat run [--data-dir DIR] [--json] [--max-tasks N] [--host-platform NAME] [--files DIR]
 * [--master-url URL] [REPLY.xml]` — runs every result the reply assigns (and every unfinished task of an
 * earlier run) to the end, through AltplatClient and runBatch. The CLI is the client here: it reads the
 * volunteer's preference files, saves the reply's <global_preferences> under <data>/altplat/, names the
 * project (--master-url, else the data dir's one matching account_*.xml, else the reply's own URL) and
 * serves `altplat task` on <data>/altplat/control.sock.
 * Test-only environment: ALTPLAT_TEST_CRASH_AT=<step> (SIGKILL itself at that journal step),
 * ALTPLAT_POLL_MS (task poll period instead of BOINC's 1000 ms).
 */
export function registerRun(program: Command): void {
  program.command('run')
    .description('run the results of a scheduler reply through slots and (alternate-platform) managers; resumes unfinished tasks')
    .argument('[reply]', 'scheduler reply file (sched_reply_*.xml); omit to only resume unfinished tasks')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR or the OS default)')
    .option('--json', 'print the report as JSON')
    .option('--max-tasks <n>', 'how many tasks run at the same time (default 1)')
    .option('--host-platform <name>', "replace the detected host platforms with this one (e.g. windows_x86_64 to route Linux work through an alt platform)")
    .option('--files <dir>', 'stage the reply\'s input and app files from this folder into the project dir (checked against nbytes/md5)')
    .option('--master-url <url>', 'the project the reply must come from (default: the data dir\'s matching account_*.xml, else the reply\'s own <master_url>)')
    .action(async (reply: string | undefined, flags: RunFlags) => {
      const maxTasks = flags.maxTasks === undefined ? 1 : Number(flags.maxTasks);
      if (!Number.isInteger(maxTasks) || maxTasks < 1) throw new UsageError(`--max-tasks must be a positive integer, not ${flags.maxTasks}`);
      const pollEnv = process.env.ALTPLAT_POLL_MS;
      const pollMs = pollEnv ? Number(pollEnv) : undefined;
      if (pollMs !== undefined && !(pollMs > 0)) throw new UsageError(`ALTPLAT_POLL_MS must be a positive number`);
      const [{ resolveDataDir, dataPaths }, { AltplatClient }, { runBatch }, { printRunReport }, prefs, { setTestHook }, { accountMasterUrl }, { CONTROL_SOCKET }, fs] = await Promise.all([
        import('../../paths.js'), import('../../tasks/client.js'), import('../../tasks/batch.js'), import('../../tasks/print.js'),
        import('../prefs.js'), import('../../tasks/test-hooks.js'), import('../../tasks/project.js'), import('../control-socket.js'), import('node:fs'),
      ]);
      const crashAt = process.env.ALTPLAT_TEST_CRASH_AT;
      if (crashAt) setTestHook((point) => { if (point === crashAt) process.kill(process.pid, 'SIGKILL'); });
      const dataDir = resolveDataDir(flags.dataDir);
      const paths = dataPaths(dataDir);
      // i9a: --json output is always printed; a run refused as a whole (reply not XML, altplat/ a link,
      // a full disk, the data dir in use) says why in `error`, with the same exit status as before.
      const refused = (e: unknown): undefined => {
        const code = (e as { code?: unknown }).code;
        if (code === 'DATA_DIR_MISSING' || code === 'DATA_DIR_NOT_A_FOLDER') throw new UsageError((e as Error).message);
        if (flags.json && typeof code === 'string') {
          process.stdout.write(`${JSON.stringify({ results: [], error: { code, message: (e as Error).message } }, null, 2)}\n`);
          process.stderr.write(`altplat: ${(e as Error).message} [${code}]\n`);
          process.exitCode = 1;
          return undefined;
        }
        throw e;
      };
      const client = await AltplatClient.open({
        dataDir, hostPlatforms: flags.hostPlatform ? [flags.hostPlatform] : undefined, pollMs,
        prefs: await prefs.readVolunteerPrefs(dataDir).catch(() => undefined),
        controlSocket: `${paths.state}/${CONTROL_SOCKET}`,
      }).catch(refused);
      if (!client) return;
      const onSignal = () => { void client.close(); };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      let stopProgress: (() => void) | undefined;
      if (!flags.json && process.stderr.isTTY) stopProgress = (await import('../../tasks/progress.js')).showProgress(client);
      try {
        let masterUrl = flags.masterUrl;
        if (reply && masterUrl === undefined) {
          // Without --master-url: the project the data dir has one account file for, else the reply's own.
          const text = await fs.promises.readFile(reply, 'utf8').catch(() => '');
          const m = /<master_url>\s*([^<]*?)\s*<\/master_url>/.exec(text);
          if (m) masterUrl = await accountMasterUrl(dataDir, m[1]!);
        }
        const result = await runBatch(client, {
          replyFile: reply, filesDir: flags.files, maxTasks, masterUrl,
          onGlobalPrefs: async (xml) => {
            await prefs.saveReplyPrefs(dataDir, xml);
            client.setPrefs(await prefs.readVolunteerPrefs(dataDir));
          },
        }).catch(refused);
        if (!result) return;
        stopProgress?.();
        if (flags.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        else printRunReport(result.results, process.stdout);
        const failed = result.results.some((r) => r.outcome === 'compute_error' || r.outcome === 'aborted' || r.outcome === 'rejected');
        if (failed) process.exitCode = 1;
      } finally {
        stopProgress?.();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        await client.close();
      }
    });
}
