import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import { escapeProjectUrl } from '../paths.js';

/**
 * A project's identity. In BOINC the client owns it (the account file's master URL) and a scheduler
 * reply can only confirm it; altplat takes it from the embedding client (`accept(reply, {masterUrl})`)
 * and checks the reply against it, and its project folder is one safe path component.
 */

/**
 * The project folder name under `projects/`: BOINC's escape_project_url (lib/url.cpp
 * escape_url_readable, via src/paths.ts), which must give one real path component. An empty name, `.`
 * or `..` would make `projects/` or the data dir itself the project dir (issue 9: `http://..`), so
 * they are refused with PROJECT_URL_UNSAFE. BOINC has no such check; its URLs come from the user.
 */
export function projectFolderName(masterUrl: string): string {
  const name = escapeProjectUrl(masterUrl);
  // escape_url_readable maps every byte that is not [A-Za-z0-9._-] to '_', so only '', '.' and '..'
  // (and names of dots only, which are still one component but read as traversal to a person) remain.
  if (name === '' || /^\.+$/.test(name) || Buffer.byteLength(name) > 255) {
    throw new AltplatError('PROJECT_URL_UNSAFE',
      `the project URL ${JSON.stringify(masterUrl)} gives the project folder name ${JSON.stringify(name)}, which is not one safe folder name`,
      { masterUrl, folder: name });
  }
  return name;
}

/**
 * lib/url.cpp canonicalize_master_url: the scheme (http:// when missing, https:// kept), no double
 * slashes, a trailing slash, the host part lower-cased.
 */
export function canonicalizeMasterUrl(url: string): string {
  const i = url.indexOf('://');
  const ssl = i === 5; // "https" is the only 5-letter scheme BOINC looks for
  let rest = i >= 0 ? url.slice(i + 3) : url;
  while (rest.includes('//')) rest = rest.replace('//', '/');
  if (!rest.endsWith('/')) rest += '/';
  const slash = rest.indexOf('/');
  rest = rest.slice(0, slash).toLowerCase() + rest.slice(slash);
  return `http${ssl ? 's' : ''}://${rest}`;
}

/** lib/url.cpp is_https_transition: the same URL except that `a` is http:// and `b` https://. */
function isHttpsTransition(a: string, b: string): boolean {
  return a.startsWith('http://') && b.startsWith('https://') && a.slice(7) === b.slice(8);
}

/**
 * Does the reply's <master_url> name the client's project? As client/cs_scheduler.cpp
 * handle_scheduler_reply compares them: the reply's URL canonicalized, both case-folded, equal — or
 * the same but for an http → https change in either direction (BOINC then moves to https or keeps it).
 * Where BOINC only alerts ("Master URL changed") and carries on, altplat refuses the reply
 * (REPLY_MASTER_URL_MISMATCH): stricter, documented in docs/EMBEDDING.md.
 */
export function sameProject(clientUrl: string, replyUrl: string): boolean {
  const reply = canonicalizeMasterUrl(replyUrl).toLowerCase();
  const current = clientUrl.toLowerCase();
  const currentCanon = canonicalizeMasterUrl(clientUrl).toLowerCase();
  return [current, currentCanon].some((c) => c === reply || isHttpsTransition(c, reply) || isHttpsTransition(reply, c));
}

/**
 * For the CLI (`altplat run` without --master-url): the master URL of the data dir's one
 * `account_*.xml` whose <master_url> names the reply's project; undefined when none or several do.
 * Account files are the volunteer's configuration: read (through a link too), never written.
 */
export async function accountMasterUrl(dataDir: string, replyUrl: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await fsp.readdir(dataDir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
  const found: string[] = [];
  for (const n of names.filter((x) => /^account_.+\.xml$/.test(x)).sort()) {
    const text = await fsp.readFile(path.join(dataDir, n), 'utf8').catch(() => '');
    const m = /<master_url>\s*([^<]*?)\s*<\/master_url>/.exec(text.slice(0, 1 << 20));
    if (m && m[1] !== '' && sameProject(m[1]!, replyUrl)) found.push(m[1]!);
  }
  return found.length === 1 ? found[0] : undefined;
}
