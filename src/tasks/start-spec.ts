import * as path from 'node:path';
import type { ManagerDefinition } from '../definition/types.js';
import type { InitData } from '../ipc/init-data.js';
import { projectSpecificPrefs } from '../prefs/account.js';
import type { JobDescription } from '../job/jobfile.js';
import type { Assignment, ReplyFileRef } from '../scheduler/reply-types.js';
import { STDERR_FILE } from '../boinc.js';
import { splitCommandLine, taskCommandLine } from './cmdline.js';
import type { LaunchSpec } from './launch.js';
import type { TaskRecord } from './journal.js';

/**
 * What a task is started with: pure functions from the journal record to init_data.xml, the job file
 * and the process spec (docs/MANAGER_CONTRACT.md).
 */

/** init_data.xml for this start (lib/app_ipc.cpp write_init_data_file; the rest are ipc defaults). */
export function initDataFor(rec: TaskRecord, dataDir: string, projectDir: string): InitData {
  const a = rec.assignment;
  return {
    projectDir, boincDir: dataDir, wuName: a.workunit.name, resultName: a.result.name,
    slot: rec.slot!, clientPid: process.pid, appName: a.appVersion.appName, appVersion: a.appVersion.versionNum,
    planClass: a.appVersion.planClass, wuCpuTime: rec.checkpointCpuTime, startingElapsedTime: rec.elapsed,
    ncpus: a.appVersion.avgNcpus, rscFpopsEst: a.workunit.rscFpopsEst, rscFpopsBound: a.workunit.rscFpopsBound,
    rscMemoryBound: a.workunit.rscMemoryBound, rscDiskBound: a.workunit.rscDiskBound,
    computationDeadline: a.result.reportDeadline, appFiles: a.appVersion.fileRefs.map((f) => f.openName),
    ...(a.account ? {
      userid: a.account.userid, teamid: a.account.teamid, hostid: a.account.hostid, userName: a.account.userName,
      teamName: a.account.teamName, projectPreferences: projectSpecificPrefs(a.account.projectPreferences),
      userTotalCredit: a.account.userTotalCredit, userExpavgCredit: a.account.userExpavgCredit,
      hostTotalCredit: a.account.hostTotalCredit, hostExpavgCredit: a.account.hostExpavgCredit,
    } : {}),
  };
}

const mainProgram = (a: Assignment): ReplyFileRef => a.appVersion.fileRefs.find((f) => f.mainProgram)!;

/**
 * client/app_start.cpp (Unix) ACTIVE_TASK::start: exec `../../projects/X/app` — argv[0] relative to the
 * slot, as BOINC passes it — with LD_LIBRARY_PATH prefixed by `../../projects/X:.:../..` (relative "in
 * case higher-level dirs are not readable to the account under which app runs"), then the inherited one
 * (the system's app environment, never process.env itself).
 */
export function nativeLaunchSpec(a: Assignment, slotDir: string, projectDir: string, dataDir: string, inheritedLd?: string): LaunchSpec {
  const rel = (p: string) => path.relative(slotDir, p) || '.';
  const ld = [rel(projectDir), '.', rel(dataDir), inheritedLd].filter((s) => s).join(':');
  return {
    exe: rel(path.join(projectDir, mainProgram(a).fileName)),
    args: splitCommandLine(taskCommandLine(a.workunit.commandLine, a.appVersion.cmdline)),
    cwd: slotDir, env: { LD_LIBRARY_PATH: ld }, stderrFile: path.join(slotDir, STDERR_FILE),
  };
}

/** The job file's content: what the manager must run inside its platform (and on which virtual CPU), by open names. */
export function jobDescriptionFor(a: Assignment, workingDir: string, manager?: ManagerDefinition): JobDescription {
  const ref = (f: ReplyFileRef) => ({ openName: f.openName, fileName: f.fileName, copyFile: f.copyFile });
  return {
    platform: a.platform, resultName: a.result.name, wuName: a.workunit.name, appName: a.appVersion.appName,
    workingDir, mainProgram: mainProgram(a).openName,
    commandLine: taskCommandLine(a.workunit.commandLine, a.appVersion.cmdline),
    appFiles: a.appVersion.fileRefs.filter((f) => !f.mainProgram).map(ref),
    inputs: a.workunit.fileRefs.map(ref),
    outputs: a.result.fileRefs.map((f) => ({ ...ref(f), optional: f.optional, maxNbytes: a.files[f.fileName]?.maxNbytes })),
    rscFpopsEst: a.workunit.rscFpopsEst, flops: a.appVersion.flops,
    ...(manager?.cpuModel !== undefined ? { cpuModel: manager.cpuModel } : {}),
    ...(manager?.machineType !== undefined ? { machineType: manager.machineType } : {}),
  };
}

/** The manager from the working copy: argv, environment (docs/MANAGER_CONTRACT.md). */
export function managerLaunchSpec(opts: {
  platform: string; workingDir: string; managerFile: string; managerCmdline: string; slotDir: string; jobFile: string;
}): LaunchSpec {
  return {
    exe: path.join(opts.workingDir, opts.managerFile),
    args: [...splitCommandLine(opts.managerCmdline), '--working-dir', opts.workingDir, '--platform', opts.platform],
    cwd: opts.slotDir,
    env: { ALTPLAT_WORKING_DIR: opts.workingDir, ALTPLAT_PLATFORM: opts.platform, ALTPLAT_JOB_FILE: opts.jobFile },
    stderrFile: path.join(opts.slotDir, STDERR_FILE),
  };
}
