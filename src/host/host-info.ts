import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import type { HostInfoData } from '../ipc/init-data.js';

/** A procfs file's text, or '' when it cannot be read. */
function readOr(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Host figures the BOINC client measures for init_data.xml's <host_info> and the scheduler request
 * (client/hostinfo_unix.cpp HOST_INFO::get_host_info): CPU vendor, model and features from
 * /proc/cpuinfo, swap from /proc/meminfo, disk total and free of the file system holding the data dir.
 * Whatever cannot be read here is left to init-data.ts's defaults.
 */
export async function measureHostInfo(dataDir: string): Promise<Partial<HostInfoData>> {
  const out: Partial<HostInfoData> = {};
  if (process.platform === 'linux') {
    // procfs answers from memory: read directly (this runs before every launch).
    const cpuinfo = readOr('/proc/cpuinfo');
    const field = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(cpuinfo)?.[1]?.trim();
    const vendor = field('vendor_id');
    const model = field('model name');
    const flags = field('flags') ?? field('Features');
    const cache = field('cache size');
    // The online processors, one `processor` entry each (BOINC: sysconf(_SC_NPROCESSORS_ONLN)).
    const ncpus = cpuinfo.match(/^processor\s*:/gm)?.length ?? 0;
    if (ncpus > 0) out.pNcpus = ncpus;
    if (vendor) out.pVendor = vendor;
    if (model) out.pModel = model;
    if (flags) out.pFeatures = flags;
    if (cache) out.mCache = Number.parseInt(cache, 10) * 1024;
    const meminfo = readOr('/proc/meminfo');
    const swap = /^SwapTotal:\s*(\d+)\s*kB/m.exec(meminfo);
    if (swap) out.mSwap = Number(swap[1]) * 1024;
    out.osName = 'Linux';
  }
  try {
    const st = await fsp.statfs(dataDir);
    out.dTotal = st.blocks * st.bsize;
    out.dFree = st.bavail * st.bsize;
  } catch {
    // The data dir's file system cannot be asked: leave the defaults.
  }
  out.mNbytes = os.totalmem();
  return out;
}
