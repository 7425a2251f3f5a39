import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import { ensureOwnedDir, readStateFileSync, realDataRoot } from '../util/owned-dir.js';

/** Where the cache lives, relative to the data dir. */
export const HASH_CACHE_FILE = path.join('altplat', 'hash-cache.json');

export interface HashCacheEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

/**
 * sha256 results remembered across scans in `<data>/altplat/hash-cache.json`, keyed by the file's real
 * absolute path and valid only while its size, mtime and inode number are unchanged — so the second scan
 * of a multi-gigabyte image costs one stat. ctime is deliberately not part of the key: hard-linking a
 * shared image into a working copy changes ctime but not the content.
 *
 * The file is replaced atomically; a missing, unreadable or corrupt cache is an empty cache, and a data
 * dir where it cannot be written only costs re-hashing next time.
 */
export class HashCache {
  private readonly entries: Map<string, HashCacheEntry>;
  private readonly used = new Set<string>();
  dirty = false;

  constructor(readonly file: string | null, entries: Map<string, HashCacheEntry> = new Map()) {
    this.entries = entries;
  }

  /** An in-memory cache that is never saved. */
  static memory(): HashCache {
    return new HashCache(null);
  }

  /** Read the cache file synchronously (it is small); anything wrong with it yields an empty cache. */
  static load(file: string): HashCache {
    const entries = new Map<string, HashCacheEntry>();
    try {
      const doc = JSON.parse(readStateFileSync(file)) as { version?: number; entries?: Record<string, HashCacheEntry> };
      if (doc && doc.version === 1 && doc.entries && typeof doc.entries === 'object') {
        for (const [k, e] of Object.entries(doc.entries)) {
          if (e && typeof e.sha256 === 'string' && /^[0-9a-f]{64}$/.test(e.sha256)
              && typeof e.size === 'number' && typeof e.mtimeMs === 'number' && typeof e.ino === 'number') {
            entries.set(k, { size: e.size, mtimeMs: e.mtimeMs, ino: e.ino, sha256: e.sha256 });
          }
        }
      }
    } catch {
      // missing or corrupt: start empty
    }
    return new HashCache(file, entries);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The remembered sha256 of `realPath` if `st` still matches what was hashed. */
  lookup(realPath: string, st: fs.Stats): string | undefined {
    const e = this.entries.get(realPath);
    if (!e) return undefined;
    this.used.add(realPath);
    if (e.size === st.size && e.mtimeMs === st.mtimeMs && e.ino === st.ino) return e.sha256;
    return undefined;
  }

  store(realPath: string, st: fs.Stats, sha256: string): void {
    const old = this.entries.get(realPath);
    this.used.add(realPath);
    if (old && old.sha256 === sha256 && old.size === st.size && old.mtimeMs === st.mtimeMs && old.ino === st.ino) return;
    this.entries.set(realPath, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256 });
    this.dirty = true;
  }

  /** Forget entries below `dir` that this run did not look up (files removed or no longer listed). */
  pruneUnder(dir: string): void {
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    for (const k of this.entries.keys()) {
      if (k.startsWith(prefix) && !this.used.has(k)) {
        this.entries.delete(k);
        this.dirty = true;
      }
    }
  }

  /** Write the cache if it changed. Returns an error message instead of throwing (a cache is optional). */
  async save(): Promise<string | undefined> {
    if (!this.file || !this.dirty) return undefined;
    const doc = { version: 1, entries: Object.fromEntries([...this.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) };
    try {
      await ensureOwnedDir(realDataRoot(path.dirname(path.dirname(this.file))), path.basename(path.dirname(this.file)));
      await writeFileAtomic(this.file, JSON.stringify(doc, null, 1) + '\n');
      this.dirty = false;
      return undefined;
    } catch (e) {
      return `could not save the hash cache ${this.file}: ${(e as Error).message}`;
    }
  }
}

const CHUNK = 1 << 20;

/**
 * sha256 of a file, read in 1 MiB chunks; `onBytes(n)` is called after each chunk with its size.
 * Also returns the number of bytes read (the size of what was hashed).
 */
export async function sha256File(file: string, onBytes?: (n: number) => void, signal?: AbortSignal): Promise<{ sha256: string; nbytes: number }> {
  const h = createHash('sha256');
  const fh = await fs.promises.open(file, 'r');
  let nbytes = 0;
  try {
    const buf = Buffer.allocUnsafe(CHUNK);
    for (;;) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      nbytes += bytesRead;
      onBytes?.(bytesRead);
    }
  } finally {
    await fh.close();
  }
  return { sha256: h.digest('hex'), nbytes };
}
