/*
 * Issue 9, items 2, 3 and 5: the hostile-reply corpus of fixtures/hostile/. Each case is a scheduler
 * reply (a good result plus hostile ones) and the links or files to plant first; the links' absolute
 * targets are generated here, into a canary tree beside the data dir. The real `altplat run --json` runs
 * each case; before and after, every entry under the case's base folder (data dir, canary, the reply and
 * its files) is recorded with lstat — path, type, size, mtime, content hash, link target — and nothing
 * may change outside the folders altplat owns. Every hostile result ends with a named reason, the good
 * result still runs, and the JSON report is always printed.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, readdirSync, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { installAltPlatform, runCli } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
const CORPUS = path.resolve('fixtures/hostile');
const PROJECT = 'example.org_hostile';
/** Folders altplat owns in the data dir (docs/DESIGN.md decision 4): changes there are expected. */
const OWNED = ['data/slots', 'data/alt_platforms_working', 'data/altplat', `data/projects/${PROJECT}`];

interface Plant { path: string; symlink?: string; hardlink?: string; file?: string }
interface Case {
  about: string; plant: Plant[]; expect: Record<string, string>; good: boolean; error?: string; dataDirLink?: boolean;
  /** Install an alternate platform of this name (manager: a copy of /bin/true) before the run. */
  altPlatform?: string;
}

const SECRET = 'TOP SECRET canary\n';

/** The canary tree beside the data dir: what a hostile reply would like to read, overwrite or delete. */
async function makeCanary(base: string): Promise<void> {
  const c = path.join(base, 'canary');
  await fsp.mkdir(path.join(c, 'outside', 'deep'), { recursive: true });
  await fsp.mkdir(path.join(c, 'etc'), { recursive: true });
  await fsp.writeFile(path.join(c, 'secret.txt'), SECRET);
  await fsp.writeFile(path.join(c, 'victim.txt'), 'victim: must never change\n');
  await fsp.writeFile(path.join(c, 'outside', 'keep.txt'), 'keep me\n');
  await fsp.writeFile(path.join(c, 'outside', 'deep', 'keep2.txt'), 'keep me too\n');
  await fsp.writeFile(path.join(c, 'etc', 'cc_config.xml'), '<cc_config>\n<options>\n</options>\n</cc_config>\n');
  await fsp.writeFile(path.join(c, 'etc', 'global_prefs_override.xml'), '<global_preferences>\n<disk_interval>45</disk_interval>\n</global_preferences>\n');
  await fsp.writeFile(path.join(c, 'etc', 'gui_rpc_auth.cfg'), 'password\n');
}

/** Every entry under `dir`, not following links: type, size, mtime and content hash (links: their target). */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const name of await fsp.readdir(path.join(dir, rel))) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const p = path.join(dir, r);
      const st = await fsp.lstat(p);
      if (st.isSymbolicLink()) out.set(r, `link -> ${await fsp.readlink(p)}`);
      else if (st.isDirectory()) {
        out.set(r, 'dir');
        await walk(r);
      } else if (st.isFile()) {
        out.set(r, `file ${st.size} ${st.mtimeMs} ${st.nlink} ${createHash('sha256').update(await fsp.readFile(p)).digest('hex')}`);
      } else out.set(r, `other ${st.mode}`);
    }
  };
  await walk('');
  return out;
}

const owned = (rel: string) => rel === 'data/projects' || OWNED.some((o) => rel === o || rel.startsWith(`${o}/`));

function changesOutsideOwned(before: Map<string, string>, after: Map<string, string>): string[] {
  const changes: string[] = [];
  for (const [k, v] of before) if (!owned(k) && after.get(k) !== v) changes.push(`${k}: ${v} => ${after.get(k) ?? 'gone'}`);
  for (const [k, v] of after) if (!owned(k) && !before.has(k)) changes.push(`${k}: new ${v}`);
  return changes;
}

const bases: string[] = [];
afterAll(async () => {
  for (const b of bases) await fsp.rm(b, { recursive: true, force: true });
});

async function prepare(name: string, c: Case) {
  const base = await fsp.mkdtemp(path.join(os.tmpdir(), `altplat-hostile-${name}-`));
  bases.push(base);
  await fsp.mkdir(path.join(base, 'data'));
  await makeCanary(base);
  await fsp.mkdir(path.join(base, 'input'));
  await fsp.cp(path.join(CORPUS, 'files'), path.join(base, 'input', 'files'), { recursive: true });
  await fsp.chmod(path.join(base, 'input', 'files', 'h_app'), 0o755);
  await fsp.copyFile(path.join(CORPUS, name, 'reply.xml'), path.join(base, 'input', 'reply.xml'));
  for (const p of c.plant) {
    const at = path.join(base, p.path);
    await fsp.mkdir(path.dirname(at), { recursive: true });
    if (p.symlink) await fsp.symlink(path.join(base, p.symlink), at);
    else if (p.hardlink) await fsp.link(path.join(base, p.hardlink), at);
    else await fsp.writeFile(at, p.file ?? '');
  }
  if (c.altPlatform) await installAltPlatform(path.join(base, 'data'), { name: c.altPlatform, manager: '/bin/true' });
  let dataDir = path.join(base, 'data');
  if (c.dataDirLink) {
    // Debian: /var/lib/boinc is a link to /var/lib/boinc-client.
    await fsp.mkdir(path.join(base, 'varlib'));
    await fsp.symlink(dataDir, path.join(base, 'varlib', 'boinc'));
    dataDir = path.join(base, 'varlib', 'boinc');
  }
  return { base, dataDir };
}

const cases = readdirSync(CORPUS).filter((n) => n !== 'files' && !n.includes('.')).sort();

describe('hostile-reply corpus (fixtures/hostile): nothing outside the owned folders changes, every case ends with a named reason', () => {
  it('has the cases of issue 9', () => {
    expect(cases).toEqual(expect.arrayContaining(['names', 'input-link-secret', 'input-hardlink-secret', 'output-link', 'output-hardlink', 'project-subdir-link',
      'project-dir-link', 'projects-link', 'slots-link', 'state-link', 'working-link', 'copy-output-link', 'debian-links', 'not-xml']));
  });

  it.each(cases)('%s', async (name) => {
    const c = JSON.parse(readFileSync(path.join(CORPUS, name, 'case.json'), 'utf8')) as Case;
    const { base, dataDir } = await prepare(name, c);
    const before = await snapshot(base);
    const run = await runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX,
      '--files', path.join(base, 'input', 'files'), path.join(base, 'input', 'reply.xml')]);
    const after = await snapshot(base);

    expect(changesOutsideOwned(before, after), c.about).toEqual([]);
    expect(run.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no Node stack trace
    let report: { results: Array<{ name: string; outcome: string; code?: string; reason?: string; outputs: Array<{ path?: string }> }>; error?: { code: string } };
    try {
      report = JSON.parse(run.stdout);
    } catch {
      throw new Error(`no JSON report printed (exit ${run.code}): ${run.stderr}`);
    }
    if (c.error) {
      expect(report.error?.code).toBe(c.error);
      expect(run.code).toBe(1);
    }
    const byName = new Map(report.results.map((r) => [r.name, r]));
    for (const [result, code] of Object.entries(c.expect)) {
      const r = byName.get(result);
      expect(r, `${result} is reported`).toBeDefined();
      expect(r!.code, `${result}: ${r!.reason}`).toBe(code);
      expect(['rejected', 'compute_error']).toContain(r!.outcome);
    }
    for (const r of report.results) {
      if (r.outcome !== 'success') expect(r.code, `${r.name} has a named reason`).toMatch(/^[A-Z][A-Z0-9_]+$/);
      expect(JSON.stringify(r)).not.toContain(SECRET.trim()); // the secret never reaches a report
    }
    if (c.good) {
      expect(byName.get('r_good')?.outcome, run.stdout).toBe('success');
      const out = await fsp.readFile(path.join(base, 'data', 'projects', PROJECT, 'out_good'), 'utf8');
      expect(out).toBe('good input\n'); // the rest of the reply still ran
    }
    // The secret reached no file altplat owns (an input linked to it is never read or copied); the
    // planted names themselves are the attacker's.
    for (const [k, v] of after) {
      if (owned(k) && v.startsWith('file ') && !c.plant.some((p) => p.path === k)) expect(readFileSync(path.join(base, k), 'utf8'), k).not.toContain(SECRET.trim());
    }
    if (c.dataDirLink) {
      // The data dir reached through a link is still altplat's: its state (journal, probe cache) is kept there.
      expect((await fsp.readdir(path.join(base, 'data', 'altplat'))).sort()).toEqual(expect.arrayContaining(['probe-cache.json', 'tasks.json']));
    }
    if (report.results.length > 0) expect(run.code).toBe(report.results.every((r) => r.outcome === 'success') ? 0 : 1);
  }, 60_000);
});

describe('a planted <data>/altplat link and altplat list', () => {
  it('the hash cache is neither read through it (a planted "cache" would vouch for a wrong file) nor written there', async () => {
    const { base, dataDir } = await prepare('state-link', { about: '', plant: [], expect: {}, good: false });
    const platformDir = await installAltPlatform(dataDir, { name: 'i686-pc-linux-gnu', manager: '/bin/true' });
    const config = path.join(platformDir, 'vm_config.xml');
    const def = path.join(platformDir, 'alt_platform.xml');
    const wrong = 'f'.repeat(64);
    await fsp.writeFile(def, (await fsp.readFile(def, 'utf8')).replace('<name>vm_config.xml</name>', `<name>vm_config.xml</name>\n        <sha256>${wrong}</sha256>`));
    // The outside folder holds a cache that claims vm_config.xml has the (wrong) declared sha256.
    const st = await fsp.stat(config);
    await fsp.writeFile(path.join(base, 'canary', 'outside', 'hash-cache.json'),
      JSON.stringify({ version: 1, entries: { [await fsp.realpath(config)]: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: wrong } } }));
    await fsp.symlink(path.join(base, 'canary', 'outside'), path.join(dataDir, 'altplat'));
    const before = await snapshot(base);
    const run = await runCli(['list', '--json', '--data-dir', dataDir]);
    const list = JSON.parse(run.stdout) as { platforms: Array<{ name: string; status: string; reasons: Array<{ code: string }> }> };
    const p = list.platforms.find((x) => x.name === 'i686-pc-linux-gnu')!;
    expect(p.status).toBe('invalid'); // hashed for real: the planted cache was not believed
    expect(p.reasons.map((r) => r.code)).toContain('FILE_SHA256_MISMATCH');
    expect(changesOutsideOwned(before, await snapshot(base))).toEqual([]);
    expect(await fsp.readdir(path.join(base, 'canary', 'outside'))).toEqual(['deep', 'hash-cache.json', 'keep.txt']);
  }, 60_000);
});
