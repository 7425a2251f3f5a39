import { managerVerdictForHost } from '../host/accel-verdict.js';
import { measureHostInfo } from '../host/host-info.js';
import type { InitData } from '../ipc/init-data.js';
import { readAuthenticator } from './account.js';
import { globalPrefsInnerXml, readGlobalPrefs, type GlobalPrefs, type ReadPrefsOptions } from './global-prefs.js';
import { readProxyInfo } from './proxy.js';

export * from './account.js';
export * from './global-prefs.js';
export * from './proxy.js';

/**
 * The parts of init_data.xml the BOINC client takes from its own configuration rather than from the
 * reply (client/app_start.cpp ACTIVE_TASK::init_app_init_data): the preferences in force and the
 * checkpoint period they set (disk_interval), the working proxy, the project's authenticator from its
 * account file, and the measured host figures. `vm_extensions_disabled` (and host_info's
 * p_vm_extensions_disabled) is set when the QEMU manager recorded KVM failing on this kernel, as the
 * client sets it once vboxwrapper reports ERR_CPU_VM_EXTENSIONS_DISABLED (client/app_control.cpp).
 */
export async function clientInitData(dataDir: string, masterUrl: string, reportDeadline: number, opts: ReadPrefsOptions = {}):
  Promise<Required<Pick<InitData, 'globalPreferences' | 'checkpointPeriod' | 'proxyInfo' | 'authenticator' | 'hostInfo' | 'computationDeadline' | 'vmExtensionsDisabled'>>> {
  const [prefs, proxyInfo, authenticator, hostInfo, verdict] = await Promise.all([
    readGlobalPrefs(dataDir, opts), readProxyInfo(dataDir), readAuthenticator(dataDir, masterUrl), measureHostInfo(dataDir),
    managerVerdictForHost(dataDir),
  ]);
  const vmExtensionsDisabled = verdict !== undefined && !verdict.works;
  return {
    globalPreferences: globalPrefsInnerXml(prefs), checkpointPeriod: prefs.diskInterval, proxyInfo, authenticator,
    hostInfo: { ...hostInfo, pVmExtensionsDisabled: vmExtensionsDisabled }, vmExtensionsDisabled,
    computationDeadline: computationDeadline(reportDeadline, prefs),
  };
}

/** client/client_state.h WF_EST_FETCH_TIME: the least work buffer the client plans with, in seconds. */
const WF_EST_FETCH_TIME = 180;

/**
 * client/result.cpp RESULT::computation_deadline: the report deadline less the minimum work buffer
 * (work_buf_min_days, at least WF_EST_FETCH_TIME) and DEADLINE_CUSHION (0).
 */
export function computationDeadline(reportDeadline: number, prefs: Pick<GlobalPrefs, 'workBufMinDays'>): number {
  return reportDeadline - Math.max(prefs.workBufMinDays * 86400, WF_EST_FETCH_TIME);
}
