import { AltplatError } from '../errors.js';
import { parseSchedulerReply, type ReplyPlatforms } from '../scheduler/reply.js';
import type { Assignment, ParsedReply } from '../scheduler/reply-types.js';
import { checkInputs } from '../slots/setup.js';
import type { PlatformDefinition } from '../definition/types.js';
import type { TaskRecord } from './journal.js';
import { projectFolderName, sameProject } from './project.js';
import type { ResultReport } from './report.js';
import { rejectedReport } from './windup.js';
import * as path from 'node:path';

/** A scheduler reply as the client hands it over: its bytes, its text, or already parsed. */
export type ReplyInput = string | Uint8Array | ParsedReply;

/**
 * The reply's `<global_preferences>` element as a client saves it (client/cs_scheduler.cpp
 * handle_scheduler_reply → save_global_prefs writes the element to global_prefs.xml); the parser keeps
 * the raw text between the tags.
 */
export function globalPreferencesElement(reply: ParsedReply): string | undefined {
  return reply.globalPreferences === undefined ? undefined : `<global_preferences>${reply.globalPreferences}</global_preferences>`;
}

export function parseReply(reply: ReplyInput, platforms: ReplyPlatforms): ParsedReply {
  if (typeof reply !== 'string' && !(reply instanceof Uint8Array)) return reply;
  const text = typeof reply === 'string' ? reply : Buffer.from(reply.buffer, reply.byteOffset, reply.byteLength).toString('utf8');
  return parseSchedulerReply(text, platforms);
}

/**
 * The project's identity is the client's (issue 9): its folder must be one safe path component, and the
 * reply must name the same project (client/cs_scheduler.cpp, see sameProject). BOINC alerts and goes
 * on; altplat refuses the whole reply, since a reply naming another project could write into it.
 */
export function checkIdentity(masterUrl: string, reply: ParsedReply): string {
  const folder = projectFolderName(masterUrl);
  if (!sameProject(masterUrl, reply.masterUrl)) {
    throw new AltplatError('REPLY_MASTER_URL_MISMATCH',
      `the reply is from ${reply.masterUrl}, not from the project ${masterUrl} it was accepted for; refused`,
      { masterUrl, replyMasterUrl: reply.masterUrl });
  }
  return folder;
}

export interface IntakeResult {
  /** New records to journal, in reply order. */
  accepted: Array<Omit<TaskRecord, 'updatedAt'>>;
  /** Results of the reply the journal already has (BOINC ignores a result it already has). */
  known: TaskRecord[];
  rejected: ResultReport[];
}

/**
 * Reply → accepted and rejected results. Nothing is started; inputs are checked before a result is
 * taken on, so a missing or wrong file rejects it without journaling it, and the same reply accepted
 * again once the files are right takes it on.
 */
export async function intake(opts: {
  reply: ParsedReply; masterUrl: string; projectsDir: string;
  known(name: string): TaskRecord | undefined;
  definition(platform: string): PlatformDefinition | undefined;
  /** Why an input is missing, when the caller knows better (a refused copy in `altplat run --files`). */
  explainMissing?: (file: string) => AltplatError | undefined;
}): Promise<IntakeResult> {
  const { reply, masterUrl } = opts;
  const projectDir = path.join(opts.projectsDir, checkIdentity(masterUrl, reply));
  const out: IntakeResult = { accepted: [], known: [], rejected: [] };
  for (const rej of reply.rejections) {
    if (rej.element === 'result') out.rejected.push(rejectedReport(rej.name, rej.platform ?? '', rej.code, rej.reason));
  }
  for (const found of reply.assignments) {
    const a: Assignment = { ...found, masterUrl };
    const known = opts.known(a.result.name);
    if (known) {
      out.known.push(known);
      continue;
    }
    if (a.kind === 'alt' && !opts.definition(a.platform)) {
      out.rejected.push(rejectedReport(a.result.name, a.platform, 'PLATFORM_UNAVAILABLE',
        `alternate platform ${a.platform} is not installed and supported on this host`));
      continue;
    }
    try {
      await checkInputs(projectDir, a);
    } catch (e) {
      if (!(e instanceof AltplatError)) throw e;
      const file = (e.details as { file?: string } | undefined)?.file;
      const why = file !== undefined && e.code === 'INPUT_MISSING' ? opts.explainMissing?.(file) : undefined;
      out.rejected.push(why
        ? rejectedReport(a.result.name, a.platform, why.code, `${why.message} (the copy in --files was refused)`)
        : rejectedReport(a.result.name, a.platform, e.code, e.message));
      continue;
    }
    out.accepted.push({
      resultName: a.result.name, masterUrl, assignment: a, step: 'assigned', prematureExits: 0, restarts: 0,
      checkpointCpuTime: 0, fractionDone: 0, elapsed: 0,
    });
  }
  return out;
}
