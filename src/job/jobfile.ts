import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { writeFileAtomic } from '../util/atomic.js';
import { childBool, childNodes, childText, parseXml, xmlEscape, type XmlNode } from '../util/xml.js';

/**
 * The job description the client writes into the slot for an alt platform's manager
 * (`<slot>/altplat_job.xml`, format in docs/MANAGER_CONTRACT.md). It tells the manager which research
 * program to run inside the VM, with which command line, and which files go in and come out, all by
 * their open names in the slot (soft-link files are resolved by the manager on the host side).
 */
export const JOB_FILE = 'altplat_job.xml';

export interface JobFileRef {
  /** Name of the file (or soft-link file) in the slot. */
  openName: string;
  /** Physical file name in the project dir. */
  fileName: string;
  copyFile: boolean;
}
export interface JobOutputRef extends JobFileRef {
  optional: boolean;
  maxNbytes?: number;
}

export interface JobDescription {
  platform: string;
  resultName: string;
  wuName: string;
  appName: string;
  /** Absolute path of the manager's working copy (alt_platforms_working/slotN). */
  workingDir: string;
  /** Open name of the research program's main program in the slot. */
  mainProgram: string;
  /** Workunit command_line + " " + app version cmdline, as BOINC builds it (client/app_start.cpp). */
  commandLine: string;
  /** Other app-version files (libraries, scripts) the program needs next to it. */
  appFiles: JobFileRef[];
  inputs: JobFileRef[];
  outputs: JobOutputRef[];
  rscFpopsEst: number;
  /** FLOPS estimate of the app version, for elapsed-time-based fraction done. */
  flops: number;
  /**
   * The platform's virtual CPU and machine type, from the definition's `<manager>` (docs/HOMOGENEITY.md).
   * The manager takes them from here, not from its own config, so the platform's declaration is what runs.
   */
  cpuModel?: string;
  machineType?: string;
}

function refXml(tag: string, r: JobFileRef & Partial<JobOutputRef>): string {
  return [
    `    <${tag}>`,
    `        <open_name>${xmlEscape(r.openName)}</open_name>`,
    `        <file_name>${xmlEscape(r.fileName)}</file_name>`,
    r.copyFile ? '        <copy_file/>' : undefined,
    r.optional ? '        <optional/>' : undefined,
    r.maxNbytes !== undefined ? `        <max_nbytes>${r.maxNbytes}</max_nbytes>` : undefined,
    `    </${tag}>`,
  ].filter((l) => l !== undefined).join('\n');
}

export function serializeJob(job: JobDescription): string {
  const lines = [
    '<altplat_job>',
    `    <platform>${xmlEscape(job.platform)}</platform>`,
    `    <result_name>${xmlEscape(job.resultName)}</result_name>`,
    `    <wu_name>${xmlEscape(job.wuName)}</wu_name>`,
    `    <app_name>${xmlEscape(job.appName)}</app_name>`,
    `    <working_dir>${xmlEscape(job.workingDir)}</working_dir>`,
    `    <main_program>${xmlEscape(job.mainProgram)}</main_program>`,
    `    <command_line>${xmlEscape(job.commandLine)}</command_line>`,
    ...job.appFiles.map((r) => refXml('app_file', r)),
    ...job.inputs.map((r) => refXml('input_file', r)),
    ...job.outputs.map((r) => refXml('output_file', r)),
    `    <rsc_fpops_est>${job.rscFpopsEst}</rsc_fpops_est>`,
    `    <flops>${job.flops}</flops>`,
    job.cpuModel !== undefined ? `    <cpu_model>${xmlEscape(job.cpuModel)}</cpu_model>` : undefined,
    job.machineType !== undefined ? `    <machine_type>${xmlEscape(job.machineType)}</machine_type>` : undefined,
    '</altplat_job>',
    '',
  ].filter((l) => l !== undefined);
  return lines.join('\n');
}

/** Rewritten before every launch of the manager (as init_data.xml), so renamed into place but not fsynced. */
export async function writeJobFile(slotDir: string, job: JobDescription): Promise<string> {
  const file = path.join(slotDir, JOB_FILE);
  await writeFileAtomic(file, serializeJob(job), 0o644, { durable: false });
  return file;
}

function need(node: XmlNode, tag: string): string {
  const v = childText(node, tag);
  if (v === undefined) throw new AltplatError('JOB_MISSING_ELEMENT', `job description lacks <${tag}>`, { tag });
  return v;
}

function refFrom(n: XmlNode): JobOutputRef {
  const max = childText(n, 'max_nbytes');
  return {
    openName: need(n, 'open_name'),
    fileName: need(n, 'file_name'),
    copyFile: childBool(n, 'copy_file'),
    optional: childBool(n, 'optional'),
    maxNbytes: max !== undefined ? Number(max) : undefined,
  };
}

const optional = <K extends string>(k: K, v: string | undefined): { [P in K]?: string } =>
  (v !== undefined && v !== '' ? { [k]: v } : {}) as { [P in K]?: string };

export function parseJob(text: string): JobDescription {
  const doc = parseXml(text, {
    what: 'job description', codePrefix: 'JOB', maxBytes: 1 << 20,
    arrayTags: ['app_file', 'input_file', 'output_file'],
  });
  const root = doc.altplat_job as XmlNode | undefined;
  if (!root || typeof root !== 'object') throw new AltplatError('JOB_MISSING_ELEMENT', 'job description lacks <altplat_job>');
  const strip = (r: JobOutputRef): JobFileRef => ({ openName: r.openName, fileName: r.fileName, copyFile: r.copyFile });
  return {
    platform: need(root, 'platform'),
    resultName: need(root, 'result_name'),
    wuName: childText(root, 'wu_name') ?? '',
    appName: childText(root, 'app_name') ?? '',
    workingDir: need(root, 'working_dir'),
    mainProgram: need(root, 'main_program'),
    commandLine: childText(root, 'command_line') ?? '',
    appFiles: childNodes(root, 'app_file').map(refFrom).map(strip),
    inputs: childNodes(root, 'input_file').map(refFrom).map(strip),
    outputs: childNodes(root, 'output_file').map(refFrom),
    rscFpopsEst: Number(childText(root, 'rsc_fpops_est') ?? '0'),
    flops: Number(childText(root, 'flops') ?? '0'),
    ...optional('cpuModel', childText(root, 'cpu_model')),
    ...optional('machineType', childText(root, 'machine_type')),
  };
}

export async function readJobFile(slotDir: string): Promise<JobDescription> {
  return parseJob(await fsp.readFile(path.join(slotDir, JOB_FILE), 'utf8'));
}
