import { measureHostInfo } from '../host/host-info.js';
import type { InitData } from '../ipc/init-data.js';
import { readAuthenticator } from './account.js';
import { globalPrefsInnerXml, readGlobalPrefs, type ReadPrefsOptions } from './global-prefs.js';
import { readProxyInfo } from './proxy.js';

export * from './account.js';
export * from './global-prefs.js';
export * from './proxy.js';

/**
 * The parts of init_data.xml the BOINC client takes from its own configuration rather than from the
 * reply (client/app_start.cpp ACTIVE_TASK::init_app_init_data): the preferences in force and the
 * checkpoint period they set (disk_interval), the working proxy, the project's authenticator from its
 * account file, and the measured host figures.
 */
export async function clientInitData(dataDir: string, masterUrl: string, opts: ReadPrefsOptions = {}):
  Promise<Required<Pick<InitData, 'globalPreferences' | 'checkpointPeriod' | 'proxyInfo' | 'authenticator' | 'hostInfo'>>> {
  const [prefs, proxyInfo, authenticator, hostInfo] = await Promise.all([
    readGlobalPrefs(dataDir, opts), readProxyInfo(dataDir), readAuthenticator(dataDir, masterUrl), measureHostInfo(dataDir),
  ]);
  return { globalPreferences: globalPrefsInnerXml(prefs), checkpointPeriod: prefs.diskInterval, proxyInfo, authenticator, hostInfo };
}
