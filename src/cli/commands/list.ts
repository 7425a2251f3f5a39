import type { Command } from 'commander';
import type { DiscoveryResult } from '../../discovery/discover.js';
import { UsageError } from '../usage.js';
import { resolveDataDir } from '../../paths.js'; // the CLI reads BOINC_DATA_DIR; the library never does

interface ListOptions {
  dataDir?: string;
  json?: boolean;
  hostPlatform?: string;
}

/**
 * `altplat list [--data-dir DIR] [--json] [--host-platform NAME]` — every platform folder with its status
 * and reasons, the hypervisors found, the names advertised. Exit 0 whenever the scan ran; 2 for usage
 * errors and an unusable data dir. Heavy modules are imported when the command runs, not at start.
 */
export function registerList(program: Command): void {
  program
    .command('list')
    .description('show the alternate platforms of the data dir: advertised (ok), unsupported or invalid, and why')
    .option('--data-dir <dir>', 'BOINC data dir (default: $BOINC_DATA_DIR, else the OS default)')
    .option('--json', 'print JSON instead of a table')
    .option('--host-platform <name>', "act as a host whose own platform is NAME (e.g. windows_x86_64) instead of the detected ones")
    .action(async (opts: ListOptions) => {
      const result = await scan(opts);
      if (opts.json) {
        const { discoveryToJson } = await import('../../discovery/discover.js');
        process.stdout.write(JSON.stringify(discoveryToJson(result), null, 2) + '\n');
      } else {
        process.stdout.write(renderTable(result));
      }
      for (const w of result.warnings) process.stderr.write(`altplat: warning: ${w}\n`);
    });
}

async function scan(opts: ListOptions): Promise<DiscoveryResult> {
  const [{ discoverPlatforms, DATA_DIR_ERRORS }, { terminalProgress, hashCallbacks }, { isAltplatError }] = await Promise.all([
    import('../../discovery/discover.js'),
    import('../../discovery/progress.js'),
    import('../../errors.js'),
  ]);
  const bar = await terminalProgress();
  try {
    return await discoverPlatforms({ dataDir: resolveDataDir(opts.dataDir), hostPlatform: opts.hostPlatform, ...hashCallbacks(bar) });
  } catch (e) {
    if (isAltplatError(e) && (DATA_DIR_ERRORS.includes(e.code) || e.code === 'BAD_PLATFORM_NAME')) throw new UsageError(e.message);
    throw e;
  } finally {
    bar.stop();
  }
}

/** The human-readable listing. */
export function renderTable(r: DiscoveryResult): string {
  const lines: string[] = [];
  const found = r.host.hypervisors.filter((h) => h.path !== null);
  const missing = r.host.hypervisors.filter((h) => h.path === null).map((h) => h.name);
  lines.push(`data dir:       ${r.dataDir}`);
  lines.push(`host:           ${r.host.os} ${r.host.arch}, ${r.host.ramMb} MiB RAM, hardware virtualization ${r.host.hwAccel.usable ? 'usable' : 'not usable'} (${r.host.hwAccel.detail})`);
  lines.push(`host platforms: ${r.hostPlatforms.join(', ') || '-'} (${r.hostPlatformsSource === 'host-platform' ? 'from --host-platform' : r.hostPlatformsSource})`);
  const hv = found.map((h) => `${h.name} ${h.version ?? '(version unreadable)'}${h.error ? ` [${h.error}]` : ''} at ${h.path}`);
  lines.push(`hypervisors:    ${hv.length > 0 ? hv.join(', ') : 'none found'}${missing.length > 0 ? `; not found: ${missing.join(', ')}` : ''}`);
  lines.push('');
  if (r.platforms.length === 0) {
    lines.push(`no platform folders in ${r.altPlatformsDir}`);
  } else {
    const rows = r.platforms.map((p) => ({
      name: p.name,
      status: p.status === 'ok' && p.native ? 'ok (native)' : p.status,
      version: p.version ?? '-',
      manager: p.definition?.manager.fileName ?? '-',
      cpu: p.cpuModel ?? '-',
      reasons: [
        ...p.reasons.map((x) => `${x.code}: ${x.message}`),
        ...(p.native && p.status === 'ok' ? ['not advertised: the host runs this platform natively'] : []),
        // Several backends: which one runs, and why each other one does not.
        ...(p.backend && p.backend.candidates.length > 1 && p.status !== 'invalid'
          ? p.backend.candidates.map((c) => `backend ${c.name}: ${c.status === 'chosen' ? 'chosen' : c.status === 'ok' ? 'usable (later in the order)' : c.reasons.map((x) => x.code).join(', ')}`)
          : []),
        ...p.warnings.map((w) => `warning: ${w}`),
      ],
    }));
    const head = { name: 'NAME', status: 'STATUS', version: 'VERSION', manager: 'MANAGER', cpu: 'CPU' };
    const w = (k: keyof typeof head) => Math.max(head[k].length, ...rows.map((row) => row[k].length));
    const widths = { name: w('name'), status: w('status'), version: w('version'), manager: w('manager'), cpu: w('cpu') };
    const left = (row: typeof head) =>
      `${row.name.padEnd(widths.name)}  ${row.status.padEnd(widths.status)}  ${row.version.padEnd(widths.version)}  ${row.manager.padEnd(widths.manager)}  ${row.cpu.padEnd(widths.cpu)}  `;
    const indent = ' '.repeat(left(head).length);
    lines.push(`${left(head)}REASONS`);
    for (const row of rows) {
      const [first, ...rest] = row.reasons.length > 0 ? row.reasons : ['-'];
      lines.push(`${left(row)}${first}`.trimEnd());
      for (const x of rest) lines.push(`${indent}${x}`);
    }
  }
  lines.push('');
  lines.push(`advertised:     ${r.advertised.length > 0 ? r.advertised.join(', ') : 'none'}`);
  return lines.join('\n') + '\n';
}
