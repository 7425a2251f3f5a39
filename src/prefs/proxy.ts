import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { errnoCode } from '../errors.js';
import { xmlEscape } from '../util/xml.js';

/** lib/proxy_info.h PROXY_INFO: what the client hands apps in init_data.xml's <proxy_info>. */
export interface ProxyInfo {
  useHttpProxy: boolean;
  useSocksProxy: boolean;
  useHttpAuth: boolean;
  socksServerName: string;
  socksServerPort: number;
  httpServerName: string;
  httpServerPort: number;
  socks5UserName: string;
  socks5UserPasswd: string;
  socks5RemoteDns: boolean;
  httpUserName: string;
  httpUserPasswd: string;
  noProxy: string;
  noAutodetect: boolean;
}

/** PROXY_INFO::clear(). */
export function defaultProxyInfo(): ProxyInfo {
  return {
    useHttpProxy: false, useSocksProxy: false, useHttpAuth: false, socksServerName: '', socksServerPort: 80,
    httpServerName: '', httpServerPort: 80, socks5UserName: '', socks5UserPasswd: '', socks5RemoteDns: false,
    httpUserName: '', httpUserPasswd: '', noProxy: '', noAutodetect: false,
  };
}

const unescape = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** PROXY_INFO::parse of one <proxy_info> element's inside; `present` as BOINC sets it (a server name given). */
export function parseProxyInfo(inner: string): { info: ProxyInfo; present: boolean } {
  const info = defaultProxyInfo();
  const text = (tag: string) => { const m = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(inner); return m ? unescape(m[1].trim()) : undefined; };
  const bool = (tag: string) => new RegExp(`<${tag}\\s*/>`).test(inner) || (Number.parseInt(text(tag) ?? '0', 10) || 0) !== 0;
  const int = (tag: string, d: number) => { const v = Number.parseInt(text(tag) ?? '', 10); return Number.isFinite(v) ? v : d; };
  Object.assign(info, {
    useHttpProxy: bool('use_http_proxy'), useSocksProxy: bool('use_socks_proxy'), useHttpAuth: bool('use_http_auth'),
    socksServerName: text('socks_server_name') ?? '', socksServerPort: int('socks_server_port', 80),
    httpServerName: text('http_server_name') ?? '', httpServerPort: int('http_server_port', 80),
    socks5UserName: text('socks5_user_name') ?? '', socks5UserPasswd: text('socks5_user_passwd') ?? '',
    socks5RemoteDns: bool('socks5_remote_dns'), httpUserName: text('http_user_name') ?? '',
    httpUserPasswd: text('http_user_passwd') ?? '', noProxy: text('no_proxy') ?? '', noAutodetect: bool('no_autodetect'),
  } satisfies ProxyInfo);
  return { info, present: info.httpServerName !== '' || info.socksServerName !== '' };
}

async function proxyIn(file: string, scope: RegExp): Promise<{ info: ProxyInfo; present: boolean } | undefined> {
  let text: string;
  try {
    text = readFileSync(file, 'latin1'); // directly, as the other files init_data.xml is made from
  } catch (e) {
    if (errnoCode(e) === 'ENOENT' || errnoCode(e) === 'ENOTDIR') return undefined;
    throw e;
  }
  const outer = scope.exec(text)?.[1];
  const m = outer === undefined ? undefined : /<proxy_info>([\s\S]*?)<\/proxy_info>/.exec(outer);
  return m ? parseProxyInfo(m[1]) : undefined;
}

/**
 * The client's working proxy (client/http_curl.cpp proxy_info_startup): cc_config.xml's <options>
 * <proxy_info> when it names a server, else the one set through the GUI and kept in client_state.xml,
 * else none. init_data.xml always carries the element (lib/app_ipc.cpp write_init_data_file).
 */
export async function readProxyInfo(dataDir: string): Promise<ProxyInfo> {
  const cc = await proxyIn(path.join(dataDir, 'cc_config.xml'), /<options>([\s\S]*?)<\/options>/);
  if (cc?.present) return cc.info;
  const state = await proxyIn(path.join(dataDir, 'client_state.xml'), /<client_state>([\s\S]*?)<\/client_state>/);
  return state?.info ?? defaultProxyInfo();
}

const b = (v: boolean) => (v ? 1 : 0);

/** PROXY_INFO::write (lib/proxy_info.cpp), the whole element. */
export function proxyInfoXml(p: ProxyInfo): string {
  const e = xmlEscape;
  return '<proxy_info>\n'
    + (p.useHttpProxy ? '    <use_http_proxy/>\n' : '')
    + (p.useSocksProxy ? '    <use_socks_proxy/>\n' : '')
    + (p.useHttpAuth ? '    <use_http_auth/>\n' : '')
    + `    <socks_server_name>${p.socksServerName}</socks_server_name>\n`
    + `    <socks_server_port>${Math.trunc(p.socksServerPort)}</socks_server_port>\n`
    + `    <http_server_name>${p.httpServerName}</http_server_name>\n`
    + `    <http_server_port>${Math.trunc(p.httpServerPort)}</http_server_port>\n`
    + `    <socks5_user_name>${e(p.socks5UserName)}</socks5_user_name>\n`
    + `    <socks5_user_passwd>${e(p.socks5UserPasswd)}</socks5_user_passwd>\n`
    + `    <socks5_remote_dns>${b(p.socks5RemoteDns)}</socks5_remote_dns>\n`
    + `    <http_user_name>${e(p.httpUserName)}</http_user_name>\n`
    + `    <http_user_passwd>${e(p.httpUserPasswd)}</http_user_passwd>\n`
    + `    <no_proxy>${p.noProxy}</no_proxy>\n`
    + `    <no_autodetect>${b(p.noAutodetect)}</no_autodetect>\n`
    + '</proxy_info>\n';
}
