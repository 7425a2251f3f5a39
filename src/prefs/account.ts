import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import { escapeProjectUrl } from '../paths.js';

/**
 * The project's authenticator, as the BOINC client has it from the account file it keeps for each
 * attached project: `<data>/account_<escaped master URL>.xml` (client/cs_account.cpp,
 * get_account_filename), `<account><master_url>…</master_url><authenticator>…</authenticator>`.
 * Empty when the data dir has no account for the project (the client then has no authenticator either).
 */
export function accountFileName(masterUrl: string): string {
  return `account_${escapeProjectUrl(masterUrl)}.xml`;
}

export async function readAuthenticator(dataDir: string, masterUrl: string): Promise<string> {
  let text: string;
  try {
    // Read directly (it is read before every launch): a small file, and a promise-based read costs ~20x more.
    text = readFileSync(path.join(dataDir, accountFileName(masterUrl)), 'latin1');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR' || errnoCode(e) === 'EISDIR') return '';
    throw e;
  }
  return /<authenticator>\s*([^<]*?)\s*<\/authenticator>/.exec(text)?.[1] ?? '';
}

/**
 * What the client hands apps as <project_preferences>: only the inside of the project preferences'
 * <project_specific> element (client/cs_account.cpp PROJECT::parse_account keeps it as
 * project_specific_prefs, copied verbatim; client/app_start.cpp passes nothing else), '' without one.
 */
export function projectSpecificPrefs(projectPreferences: string): string {
  return /<project_specific>([\s\S]*?)<\/project_specific>/.exec(projectPreferences)?.[1] ?? '';
}
