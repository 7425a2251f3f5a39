/** The parts of a BOINC scheduler reply that the task lifecycle uses (boinc-protocol.md §4). */

export interface ReplyFileInfo {
  name: string;
  downloadUrls: string[];
  uploadUrls: string[];
  md5?: string;
  nbytes?: number;
  maxNbytes?: number;
  executable: boolean;
  sticky: boolean;
  /** client/client_types.cpp FILE_INFO::uploadable(): a file is an output iff it has upload URLs. */
  isOutput: boolean;
}

export interface ReplyFileRef {
  fileName: string;
  /** open_name, or the physical name when the reply gives none (client/app_start.cpp setup_file). */
  openName: string;
  mainProgram: boolean;
  copyFile: boolean;
  optional: boolean;
}

export interface ReplyApp {
  name: string;
  userFriendlyName: string;
}

export interface ReplyAppVersion {
  appName: string;
  versionNum: number;
  platform: string;
  planClass: string;
  apiVersion?: string;
  cmdline: string;
  /** `<file_prefix>`: input and output open names go under this folder (first 16 characters) and are copied. */
  filePrefix?: string;
  avgNcpus: number;
  flops: number;
  fileRefs: ReplyFileRef[];
}

export interface ReplyWorkunit {
  name: string;
  appName: string;
  commandLine: string;
  rscFpopsEst: number;
  rscFpopsBound: number;
  rscMemoryBound: number;
  rscDiskBound: number;
  fileRefs: ReplyFileRef[];
}

export interface ReplyResult {
  name: string;
  wuName: string;
  reportDeadline: number;
  platform: string;
  versionNum: number;
  planClass: string;
  fileRefs: ReplyFileRef[];
}

/** How a result will run: `native` = the host's own platform (main program exec'd directly, as BOINC
 * does); `alt` = an advertised alternate platform (through that platform's manager). */
export type RunKind = 'native' | 'alt';

/**
 * The account and host facts a reply carries, which the client hands every app in init_data.xml
 * (lib/app_ipc.cpp write_init_data_file: userid, teamid, hostid, user_name, team_name, the
 * project_preferences blob and the credit figures).
 */
export interface ReplyAccount {
  userid: number;
  teamid: number;
  hostid: number;
  userName: string;
  teamName: string;
  /** Raw XML inside <project_preferences>, passed to apps as is. */
  projectPreferences: string;
  userTotalCredit: number;
  userExpavgCredit: number;
  hostTotalCredit: number;
  hostExpavgCredit: number;
}

/** One result ready to run, with everything it references resolved. */
export interface Assignment {
  masterUrl: string;
  result: ReplyResult;
  workunit: ReplyWorkunit;
  appVersion: ReplyAppVersion;
  platform: string;
  kind: RunKind;
  /** Every file_info the app version, workunit and result name, by physical name. */
  files: Record<string, ReplyFileInfo>;
  /** The reply's account/host facts for init_data.xml (absent in journals written before it existed). */
  account?: ReplyAccount;
}

export interface Rejection {
  /** What was dropped: the element kind and its name. */
  element: 'file_info' | 'app' | 'app_version' | 'workunit' | 'result';
  name: string;
  code: string;
  reason: string;
  /** For a result: the platform it was sent for (the primary platform when the reply leaves it empty). */
  platform?: string;
}

export interface ParsedReply {
  masterUrl: string;
  projectName: string;
  apps: ReplyApp[];
  fileInfos: ReplyFileInfo[];
  appVersions: ReplyAppVersion[];
  workunits: ReplyWorkunit[];
  assignments: Assignment[];
  rejections: Rejection[];
  /** `<message>` texts from the server. */
  messages: string[];
  account: ReplyAccount;
  /** `<result_abort><name>` — results the project no longer wants (client/cs_scheduler.cpp: aborted with 202). */
  resultAborts: string[];
  /** `<result_abort_if_not_started><name>` — aborted only if they never ran. */
  resultAbortsIfNotStarted: string[];
  /** The raw contents of the reply's `<global_preferences>` (client/cs_scheduler.cpp saves them), if any. */
  globalPreferences?: string;
}
