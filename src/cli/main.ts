#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { cliExitStatus, isAltplatError } from '../errors.js';
import { registerList } from './commands/list.js';
import { registerRequest } from './commands/request.js';
import { registerRun } from './commands/run.js';
import { registerTask } from './commands/task.js';
import { registerInstall } from './commands/install.js';
import { registerVerify } from './commands/verify.js';
import { UsageError } from './usage.js';

/** The package's version: the nearest package.json above this file (dist/src/cli or src/cli). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'altplat' && pkg.version) return pkg.version;
    } catch {
      // not here; one level up
    }
  }
  return 'unknown';
}

/** `altplat` — exit codes: 0 done, 1 the work failed, 2 usage error or unreadable data dir (src/errors.ts cliExitStatus). */
export async function main(argv: string[]): Promise<number> {
  const program = new Command('altplat')
    .description('Alternate platforms (VM images + manager) for a BOINC client')
    .version(packageVersion(), '-V, --version', 'print the version')
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const register of [registerList, registerRequest, registerRun, registerTask, registerInstall, registerVerify]) {
    register(program);
  }
  try {
    await program.parseAsync(argv, { from: 'node' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here with exit code 0.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof UsageError) {
      process.stderr.write(`altplat: ${e.message}\n`);
      return 2;
    }
    if (isAltplatError(e)) {
      process.stderr.write(`altplat: ${e.message} [${e.code}]\n`);
      return cliExitStatus(e.code);
    }
    process.stderr.write(`altplat: ${(e as Error).stack ?? String(e)}\n`);
    return 1;
  }
}

main(process.argv).then((code) => {
  process.exitCode = code;
});
