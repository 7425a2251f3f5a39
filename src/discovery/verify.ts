import { AltplatError } from '../errors.js';
import type { Reason } from '../definition/types.js';
import type { FileCheck, HashProgress } from '../definition/validate.js';
import { discoverPlatforms, type DiscoverOptions } from './discover.js';

export type Verdict = 'ok' | 'mismatch' | 'invalid';

export interface VerifiedPlatform {
  name: string;
  dir: string;
  /** `ok`: every listed file is there with its size and sha256; `mismatch`: a file is missing, of another
   *  size or hash (or the manager is unusable); `invalid`: the definition itself is broken. */
  verdict: Verdict;
  /** Integrity reasons only (requirements of the host are not verify's business). */
  reasons: Reason[];
  files: FileCheck[];
}

export interface VerifyResult {
  dataDir: string;
  ok: boolean;
  platforms: VerifiedPlatform[];
  hashedFiles: number;
  hashedBytes: number;
}

export interface VerifyOptions extends Pick<DiscoverOptions, 'dataDir' | 'host' | 'probes' | 'signal'> {
  /** Only this platform (folder name); VERIFY_NOT_FOUND when there is none. */
  name?: string;
  onHashStart?: (bytesTotal: number, files: number) => void;
  onProgress?: (p: HashProgress) => void;
}

const DEFINITION_CODES = /^DEF_/;

/**
 * Re-hash the installed platforms, bypassing the hash cache (and refreshing it with what was read).
 *
 * @example
 * const v = await verifyPlatforms({ dataDir: '/var/lib/boinc-client' });
 * if (!v.ok) for (const p of v.platforms) if (p.verdict !== 'ok') console.log(p.name, p.reasons);
 */
export async function verifyPlatforms(opts: VerifyOptions = {}): Promise<VerifyResult> {
  // Requirements are not verify's business: a host that satisfies everything spares the probes.
  const host = opts.host ?? { os: process.platform, arch: 'any', ramMb: Number.MAX_SAFE_INTEGER, hwAccel: { usable: true, detail: 'not probed' }, hypervisors: [] };
  const r = await discoverPlatforms({ ...opts, host, only: opts.name !== undefined ? [opts.name] : undefined, rehash: true, hostPlatforms: [] });
  if (opts.name !== undefined && r.platforms.length === 0) {
    throw new AltplatError('VERIFY_NOT_FOUND', `no platform folder named ${opts.name} in ${r.altPlatformsDir}`);
  }
  const platforms = r.platforms.map((p): VerifiedPlatform => {
    const reasons = p.reasons.filter((x) => !x.code.startsWith('REQ_'));
    const verdict: Verdict = reasons.length === 0 ? 'ok' : reasons.some((x) => DEFINITION_CODES.test(x.code)) ? 'invalid' : 'mismatch';
    return { name: p.name, dir: p.dir, verdict, reasons, files: p.files };
  });
  return {
    dataDir: r.dataDir,
    ok: platforms.every((p) => p.verdict === 'ok'),
    platforms,
    hashedFiles: r.stats.hashedFiles,
    hashedBytes: r.stats.hashedBytes,
  };
}
