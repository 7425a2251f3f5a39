import * as fs from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { ALT_PLATFORMS_DIR, resolveDataDir } from '../paths.js';
import { HashCache, HASH_CACHE_FILE } from '../definition/hash.js';
import { parseDefinition, type ParsedDefinition } from '../definition/parse.js';
import { readDefinition } from '../definition/read.js';
import { INVALID_CODES } from '../definition/reasons.js';
import type { PlatformDefinition, Reason } from '../definition/types.js';
import { checkPlatformFiles, runHashJobs, type FileCheck, type HashJob, type HashProgress } from '../definition/validate.js';
import { probeHost, withManagerVerdict, type HostInfo, type HostProbes, type HypervisorInfo } from '../host/probes.js';
import { resolveHostPlatforms, type PlatformDetectProbes } from '../host/platforms.js';
import type { HypervisorName } from '../definition/types.js';
import { evaluateRequirements } from './requirements.js';
import { chooseBackend, noBackendReasons, readBackendOrder, type BackendChoice, type BackendOrder } from './backend.js';

export type PlatformStatus = 'ok' | 'unsupported' | 'invalid';

export interface DiscoveredPlatform {
  /** The folder name (a sound definition's <name> always equals it; a broken one's may not). */
  name: string;
  /** Absolute path of the platform folder (as found under alt_platforms/, links not resolved). */
  dir: string;
  status: PlatformStatus;
  version: string | null;
  userFriendlyName: string | null;
  /** Absolute path of the manager (inside the real folder) when it is sound. */
  manager: string | null;
  /** The platform's virtual CPU (`<manager><cpu_model>`) and machine type, when declared and well-formed. */
  cpuModel: string | null;
  machineType: string | null;
  /** Why it is not advertised: invalid reasons first, then unsupported ones. Empty when `ok`. */
  reasons: Reason[];
  /**
   * The name is one of the host's own platforms: `ok`, yet never advertised (the host runs that
   * platform's programs natively, and a scheduler request never repeats a name).
   */
  native: boolean;
  /** Sent to the scheduler as an alternate platform: `ok` and not native. */
  advertised: boolean;
  /** Ignored unknown elements and other things worth knowing that do not stop the platform. */
  warnings: string[];
  /** Per listed file: size and sha256 results. */
  files: FileCheck[];
  /** The parsed definition (absent when the definition itself is broken); its `manager` is the chosen backend. */
  definition?: PlatformDefinition;
  /** Which backend would run here and why each other one would not (absent when the definition is broken). */
  backend?: BackendChoice;
}

export interface DiscoveryResult {
  dataDir: string;
  altPlatformsDir: string;
  /** Sorted by folder name in code-point order (C locale): stable whatever the file system or locale. */
  platforms: DiscoveredPlatform[];
  /** Names of the advertised platforms, in the same order. */
  advertised: string[];
  host: HostInfo;
  /** The host's own platforms (primary first) and where that list came from. */
  hostPlatforms: string[];
  hostPlatformsSource: 'given' | 'host-platform' | 'detected';
  /** Problems that did not stop the scan (hash cache not writable, alt_platforms is a file, ...). */
  warnings: string[];
  stats: { folders: number; hashedFiles: number; hashedBytes: number; cachedHashes: number; ms: number };
}

export interface DiscoverOptions {
  /** Data dir; default the OS default (the library never reads BOINC_DATA_DIR; the CLI does). */
  dataDir?: string;
  /** Use this host description instead of probing. */
  host?: HostInfo;
  /** Replace single probes (tests, embedding clients with their own detection). */
  probes?: Partial<HostProbes>;
  probeTimeoutMs?: number;
  /** Probe only these hypervisors (default all; `list` shows every one found). */
  probeHypervisors?: readonly HypervisorName[];
  /** `--host-platform NAME`: treat NAME as the host's only platform. */
  hostPlatform?: string;
  /** The host's own platforms, primary first (e.g. those a scheduler request already names). */
  hostPlatforms?: readonly string[];
  platformProbes?: Partial<PlatformDetectProbes>;
  /**
   * Remember hypervisor versions in `<data>/altplat/probe-cache.json` (default true; see
   * ProbeHostOptions.cacheFile), so a scan with unchanged hypervisors starts no process.
   */
  probeCache?: boolean;
  /** The sha256 cache; default `<data>/altplat/hash-cache.json`; `false` = remember nothing. */
  hashCache?: HashCache | false;
  /** Hash every listed file again, ignoring the cache (altplat verify). */
  rehash?: boolean;
  /** Only these folder names (altplat verify NAME). */
  only?: readonly string[];
  /** Progress of the sha256 pass (only called when something must be hashed). */
  onProgress?: (p: HashProgress) => void;
  /** Told the total before hashing starts, so a caller can decide whether to show progress. */
  onHashStart?: (bytesTotal: number, files: number) => void;
  signal?: AbortSignal;
  /**
   * The volunteer's backend order (backend names, most wanted first; or per platform). Default: the
   * file `<data>/altplat/backend_order.json` when present; `false` = the definitions' own order.
   */
  backendOrder?: BackendOrder | false;
}

/** Errors that mean the data dir itself is unusable (the CLI exits 2 for them). */
export const DATA_DIR_ERRORS = ['DATA_DIR_MISSING', 'DATA_DIR_NOT_A_FOLDER', 'DATA_DIR_UNREADABLE'];

const BATCH = 64;
export const PROBE_CACHE_FILE = path.join('altplat', 'probe-cache.json');

/**
 * Scan `<data>/alt_platforms/` and say, for every folder in it, whether the platform is advertised
 * (`ok`), `unsupported` on this host (which requirement, what was found) or `invalid` (why). One broken
 * platform never stops the others; a missing alt_platforms/ means no platforms. Host probes run once, in
 * parallel with the scan. sha256 checks are answered from the hash cache when the file is unchanged.
 *
 * @example
 * const r = await discoverPlatforms({ dataDir: '/var/lib/boinc-client' });
 * console.log(r.advertised);                    // ['i686-pc-linux-gnu']
 * for (const p of r.platforms) if (p.status !== 'ok') console.log(p.name, p.reasons);
 */
export async function discoverPlatforms(opts: DiscoverOptions = {}): Promise<DiscoveryResult> {
  const t0 = performance.now();
  const dataDir = resolveDataDir(opts.dataDir, {});
  checkDataDir(dataDir);
  const hostPromise = opts.host ? Promise.resolve(opts.host)
    : probeHost({
      probes: opts.probes,
      timeoutMs: opts.probeTimeoutMs,
      hypervisors: opts.probeHypervisors,
      ...(opts.probeCache !== false ? { cacheFile: path.join(dataDir, PROBE_CACHE_FILE) } : {}),
    });
  const hp = resolveHostPlatforms({ hostPlatform: opts.hostPlatform, hostPlatforms: opts.hostPlatforms, platformProbes: opts.platformProbes });
  const warnings: string[] = [];
  const altDir = path.join(dataDir, ALT_PLATFORMS_DIR);
  const cache = opts.hashCache === false ? HashCache.memory() : opts.hashCache ?? HashCache.load(path.join(dataDir, HASH_CACHE_FILE));

  const folders = listPlatformFolders(altDir, warnings, opts.only);
  const altReal = folders.length > 0 ? fs.realpathSync.native(altDir) : altDir;
  const scanned: Scanned[] = [];
  for (let i = 0; i < folders.length; i++) {
    if (i > 0 && i % BATCH === 0) {
      opts.signal?.throwIfAborted();
      await new Promise<void>((r) => setImmediate(r));
    }
    scanned.push(scanFolder(altDir, altReal, folders[i], cache, opts.rehash ?? false));
  }

  // The QEMU manager's recorded timed-boot verdict overrides the probe (src/host/accel-verdict.ts);
  // a host or hwAccel probe pinned by the caller is taken as it is.
  const host = opts.host || opts.probes?.hwAccel ? await hostPromise : await withManagerVerdict(await hostPromise, dataDir);
  const order = opts.backendOrder === false ? undefined : opts.backendOrder ?? readBackendOrder(dataDir, warnings);
  for (const s of scanned) {
    if (!s.definition) continue;
    s.unsupported = evaluateRequirements(s.definition.requires, host);
    const { choice, manager } = chooseBackend(s.definition, host, order);
    s.backend = choice;
    if (manager) {
      s.definition.manager = manager;
      s.manager = s.managers?.[manager.fileName];
    } else {
      s.unsupported.push(...noBackendReasons(choice));
    }
  }

  // Hash what the cache could not answer — skipping platforms already invalid for another reason,
  // unless a full re-hash was asked for.
  const jobs: HashJob[] = [];
  for (const s of scanned) {
    if (opts.rehash || s.invalid.length === 0) jobs.push(...s.jobs);
    else for (const j of s.jobs) j.check.status = 'unchecked';
  }
  const hashedBytes = jobs.reduce((n, j) => n + j.stat.size, 0);
  if (jobs.length > 0) {
    opts.onHashStart?.(hashedBytes, jobs.length);
    await runHashJobs(jobs, { cache, onProgress: opts.onProgress, signal: opts.signal });
  }

  const own = new Set(hp.platforms);
  const platforms = scanned.map((s): DiscoveredPlatform => {
    const reasons = [...s.invalid, ...s.unsupported];
    const status: PlatformStatus = s.invalid.length > 0 ? 'invalid' : s.unsupported.length > 0 ? 'unsupported' : 'ok';
    const native = own.has(s.name);
    return {
      name: s.name,
      dir: s.dir,
      status,
      version: s.parsed?.version ?? null,
      userFriendlyName: s.parsed?.userFriendlyName ?? null,
      manager: s.manager ?? null,
      // The chosen backend's virtual CPU (the first manager's while none is chosen or the definition is broken).
      cpuModel: s.definition?.manager.cpuModel ?? s.parsed?.cpuModel ?? null,
      machineType: s.definition?.manager.machineType ?? s.parsed?.machineType ?? null,
      reasons,
      native,
      advertised: status === 'ok' && !native,
      warnings: s.parsed?.warnings ?? [],
      files: s.files,
      ...(s.definition ? { definition: s.definition } : {}),
      ...(s.backend ? { backend: s.backend } : {}),
    };
  });

  if (!opts.only && folders.length > 0) cache.pruneUnder(altReal);
  const saveError = await cache.save();
  if (saveError) warnings.push(saveError);

  return {
    dataDir,
    altPlatformsDir: altDir,
    platforms,
    advertised: platforms.filter((p) => p.advertised).map((p) => p.name),
    host,
    hostPlatforms: hp.platforms,
    hostPlatformsSource: hp.source,
    warnings,
    stats: {
      folders: folders.length,
      hashedFiles: jobs.length,
      hashedBytes,
      cachedHashes: scanned.reduce((n, s) => n + s.files.filter((f) => f.fromCache).length, 0),
      ms: performance.now() - t0,
    },
  };
}

/** Throw DATA_DIR_MISSING / DATA_DIR_UNREADABLE / DATA_DIR_NOT_A_FOLDER unless `dataDir` is a usable folder. */
export function checkDataDir(dataDir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dataDir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new AltplatError('DATA_DIR_MISSING', `the data dir ${dataDir} does not exist (set it with --data-dir or BOINC_DATA_DIR)`);
    throw new AltplatError('DATA_DIR_UNREADABLE', `the data dir ${dataDir} cannot be read: ${code ?? (e as Error).message}`);
  }
  if (!st.isDirectory()) throw new AltplatError('DATA_DIR_NOT_A_FOLDER', `the data dir ${dataDir} is not a folder`);
}

interface Folder {
  name: string;
  /** Reached through a symbolic link (its real path must be resolved). */
  linked: boolean;
}

/** Folders under alt_platforms/, sorted; files and dot-folders (install scratch) are ignored. */
function listPlatformFolders(altDir: string, warnings: string[], only?: readonly string[]): Folder[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(altDir, { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return [];
    if (code === 'ENOTDIR') {
      warnings.push(`${altDir} is a file, not a folder: no alternate platforms`);
      return [];
    }
    throw new AltplatError('DATA_DIR_UNREADABLE', `${altDir} cannot be read: ${code ?? (e as Error).message}`);
  }
  const folders: Folder[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (only && !only.includes(e.name)) continue;
    if (e.isDirectory()) folders.push({ name: e.name, linked: false });
    else if (e.isSymbolicLink()) {
      try {
        if (fs.statSync(path.join(altDir, e.name)).isDirectory()) folders.push({ name: e.name, linked: true });
      } catch {
        // a dangling link is not a folder
      }
    }
  }
  return folders.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

interface Scanned {
  name: string;
  dir: string;
  parsed?: ParsedDefinition;
  definition?: PlatformDefinition;
  manager?: string;
  /** Real paths of every sound manager, by file name. */
  managers?: Record<string, string>;
  backend?: BackendChoice;
  invalid: Reason[];
  unsupported: Reason[];
  files: FileCheck[];
  jobs: HashJob[];
}

function invalid(code: keyof typeof INVALID_CODES, message: string): Reason {
  return { code, message };
}

/** Everything about one folder that needs no host knowledge and no hashing; synchronous. */
function scanFolder(altDir: string, altReal: string, f: Folder, cache: HashCache, rehash: boolean): Scanned {
  const folder = f.name;
  const dir = path.join(altDir, folder);
  const s: Scanned = { name: folder, dir, invalid: [], unsupported: [], files: [], jobs: [] };
  let dirReal = path.join(altReal, folder);
  if (f.linked) {
    try {
      dirReal = fs.realpathSync.native(dir);
    } catch (e) {
      s.invalid.push(invalid('DEF_UNREADABLE', `the platform folder cannot be opened: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`));
      return s;
    }
  }
  const read = readDefinition(dirReal);
  if ('reason' in read) {
    s.invalid.push(read.reason);
    return s;
  }
  const parsed = parseDefinition(read.text, { dir, folderName: folder });
  s.parsed = parsed;
  s.invalid.push(...parsed.reasons);
  if (!parsed.definition) return s;
  s.definition = parsed.definition;
  const disk = checkPlatformFiles(parsed.definition, dirReal, { cache, rehash });
  s.invalid = disk.reasons; // the same array the hash jobs add to
  s.files = disk.files;
  s.jobs = disk.jobs;
  s.manager = disk.manager;
  s.managers = disk.managers;
  return s;
}

/** The JSON `altplat list --json` prints (shape in docs/DISCOVERY.md). */
export function discoveryToJson(r: DiscoveryResult) {
  return {
    dataDir: r.dataDir,
    platforms: r.platforms.map((p) => ({
      name: p.name,
      dir: p.dir,
      status: p.status,
      version: p.version,
      reasons: p.reasons.map((x) => ({ code: x.code, message: x.message })),
      userFriendlyName: p.userFriendlyName,
      manager: p.manager,
      cpuModel: p.cpuModel,
      machineType: p.machineType,
      native: p.native,
      advertised: p.advertised,
      warnings: p.warnings,
      backend: p.backend
        ? { chosen: p.backend.chosen, candidates: p.backend.candidates.map((c) => ({ name: c.name, status: c.status, reasons: c.reasons.map((x) => ({ code: x.code, message: x.message })) })) }
        : { chosen: null, candidates: [] },
    })),
    advertised: r.advertised,
    hypervisors: r.host.hypervisors.filter((h): h is HypervisorInfo & { path: string } => h.path !== null)
      .map((h) => ({ name: h.name, version: h.version, path: h.path })),
  };
}
