/*
 * Issue 9 items 1 and 7: the project's identity comes from the client and its folder is one safe path
 * component; the reply's <global_preferences> are handed to the client, and the CLI saves and uses them.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AltplatClient, canonicalizeMasterUrl, projectFolderName, sameProject } from '../src/index.js';
import { buildBoincProgram } from './helpers/boinc-c.js';
import { CLI, makeReply, MASTER_URL, PROJECT, runCli, tempDataDir, treeStamp, writeReply } from './lifecycle-helpers.js';

const LINUX = 'x86_64-pc-linux-gnu';
let app: string;
beforeAll(async () => {
  await fsp.access(CLI);
  app = await buildBoincProgram(path.resolve('test/c/lifecycle_app.c'));
});

const PREFS = '<global_preferences>\n   <mod_time>1700000000</mod_time>\n   <disk_interval>30.000000</disk_interval>\n</global_preferences>';

async function replyWith(dataDir: string, edit: (xml: string) => string = (x) => x, name = 'p1') {
  const r = makeReply({ platform: LINUX, mainProgram: await fsp.readFile(app), results: [{ name, input: 'success 1', copyOutput: true }] });
  return writeReply(dataDir, { ...r, xml: edit(r.xml) });
}
const withPrefs = (xml: string) => xml.replace('<project_name>', `${PREFS}\n<project_name>`);
const run = (dataDir: string, reply: { replyFile: string; filesDir: string }, extra: string[] = []) =>
  runCli(['run', '--json', '--data-dir', dataDir, '--host-platform', LINUX, '--files', reply.filesDir, ...extra, reply.replyFile]);

describe('project identity (lib/url.cpp, client/cs_scheduler.cpp)', () => {
  it('the project folder is one safe path component: "", "." and ".." are refused', () => {
    expect(projectFolderName(MASTER_URL)).toBe(PROJECT);
    for (const bad of ['http://..', 'http://../', 'http://.', 'http://', '', 'https://...']) {
      expect(() => projectFolderName(bad), bad).toThrow(expect.objectContaining({ code: 'PROJECT_URL_UNSAFE' }));
    }
  });

  it('compares URLs as the BOINC client does: canonicalized, case-folded, http → https either way', () => {
    expect(canonicalizeMasterUrl('EXAMPLE.org//lctest')).toBe('http://example.org/lctest/');
    expect(canonicalizeMasterUrl('https://Example.ORG/LcTest')).toBe('https://example.org/LcTest/');
    expect(sameProject(MASTER_URL, 'https://EXAMPLE.org//lctest')).toBe(true);
    expect(sameProject(MASTER_URL, 'http://example.org/lctest/')).toBe(true);
    expect(sameProject('http://example.org/lctest/', MASTER_URL)).toBe(true);
    expect(sameProject(MASTER_URL, 'https://example.org/other/')).toBe(false);
    expect(sameProject(MASTER_URL, 'http://..')).toBe(false);
  });

  it('accept() refuses a reply from another project than the one named (REPLY_MASTER_URL_MISMATCH) and journals nothing', async () => {
    const dataDir = await tempDataDir('altplat-id-');
    const { replyFile } = await replyWith(dataDir);
    const client = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX] });
    const xml = await fsp.readFile(replyFile);
    await expect(client.accept(xml, { masterUrl: 'https://example.org/other/' })).rejects.toMatchObject({ code: 'REPLY_MASTER_URL_MISMATCH' });
    await expect(client.accept(xml, { masterUrl: 'http://..' })).rejects.toMatchObject({ code: 'PROJECT_URL_UNSAFE' });
    expect(client.tasks()).toEqual([]);
    // The http:// account of a project whose reply says https:// is the same project.
    const { rejected, tasks } = await client.accept(xml, { masterUrl: 'http://example.org/lctest/' });
    expect(rejected.map((r) => r.code)).toEqual(['INPUT_MISSING']); // same project; its files are just not there
    expect(tasks).toEqual([]);
    await client.close();
  });

  it('altplat run: a reply whose <master_url> is http://.. writes nothing outside its folders; the reason is named', async () => {
    const dataDir = await tempDataDir('altplat-id-');
    await fsp.writeFile(path.join(dataDir, 'client_state.xml'), '<client_state/>\n');
    const reply = await replyWith(dataDir, (x) => x.replace(`<master_url>${MASTER_URL}</master_url>`, '<master_url>http://..</master_url>')
      .replace(/p1_out/g, 'client_state.xml'));
    const before = await treeStamp(dataDir);
    const r = await run(dataDir, reply);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('PROJECT_URL_UNSAFE');
    const after = await treeStamp(dataDir);
    for (const k of Object.keys(after)) if (k.startsWith('altplat/')) delete after[k];
    expect(after).toEqual(before);
  });

  it('altplat run --master-url: a reply from another project is refused', async () => {
    const dataDir = await tempDataDir('altplat-id-');
    const r = await run(dataDir, await replyWith(dataDir), ['--master-url', 'https://example.org/other/']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('REPLY_MASTER_URL_MISMATCH');
  });

  it('altplat run without --master-url takes the URL of the data dir\'s one matching account file, else the reply\'s own', async () => {
    // The reply spells the URL with a double slash: its own folder would be example.org__lctest.
    const odd = (x: string) => x.replace(`<master_url>${MASTER_URL}</master_url>`, '<master_url>https://example.org//lctest/</master_url>');
    const plain = await tempDataDir('altplat-id-');
    const r0 = await run(plain, await replyWith(plain, odd));
    expect(JSON.parse(r0.stdout).results[0].outputs[0].path).toBe(path.join(plain, 'projects', 'example.org__lctest', 'p1_out'));
    const withAccount = await tempDataDir('altplat-id-');
    await fsp.writeFile(path.join(withAccount, `account_${PROJECT}.xml`), `<account>\n    <master_url>${MASTER_URL}</master_url>\n    <authenticator>abc</authenticator>\n</account>\n`);
    await fsp.writeFile(path.join(withAccount, 'account_other.example.net.xml'), '<account>\n    <master_url>https://other.example.net/</master_url>\n</account>\n');
    const r1 = await run(withAccount, await replyWith(withAccount, odd));
    expect(r1.code, r1.stderr).toBe(0);
    expect(JSON.parse(r1.stdout).results[0].outputs[0].path).toBe(path.join(withAccount, 'projects', PROJECT, 'p1_out'));
  });
});

describe('the reply\'s <global_preferences> (client/cs_scheduler.cpp save_global_prefs)', () => {
  it('accept() returns them for the client to save', async () => {
    const dataDir = await tempDataDir('altplat-id-');
    const { replyFile } = await replyWith(dataDir, withPrefs);
    const client = await AltplatClient.open({ dataDir, hostPlatforms: [LINUX] });
    const { globalPrefs } = await client.accept(await fsp.readFile(replyFile, 'utf8'), { masterUrl: MASTER_URL });
    expect(globalPrefs).toBe(PREFS);
    expect((await client.accept(await fsp.readFile(replyFile), { masterUrl: MASTER_URL })).globalPrefs).toBe(PREFS);
    await client.close();
  });

  it('altplat run saves them under <data>/altplat/ and their disk_interval is the app\'s checkpoint period, after the override file', async () => {
    const dataDir = await tempDataDir('altplat-id-');
    const reply = await replyWith(dataDir, withPrefs);
    const r = await run(dataDir, reply);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).results[0].stderr).toContain('lifecycle_app: checkpoint_period 30\n');
    expect(await fsp.readFile(path.join(dataDir, 'altplat', 'global_prefs.xml'), 'utf8')).toContain('<disk_interval>30.000000</disk_interval>');
    await expect(fsp.access(path.join(dataDir, 'global_prefs.xml'))).rejects.toThrow(); // the real client's file is not written
    // The volunteer's local override wins over the project's preferences, as in BOINC.
    await fsp.writeFile(path.join(dataDir, 'global_prefs_override.xml'), '<global_preferences>\n   <disk_interval>45</disk_interval>\n</global_preferences>\n');
    const again = await run(dataDir, await replyWith(dataDir, withPrefs, 'p2'));
    expect(JSON.parse(again.stdout).results[0].stderr).toContain('lifecycle_app: checkpoint_period 45\n');
  });
});
