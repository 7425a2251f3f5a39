/**
 * The discovery half of altplat's public API — definitions, host probes, discovery, install/verify and
 * the scheduler request — for src/index.ts to re-export (`export * from './discovery/index.js'`).
 */
export { parseDefinition, parseDefinitionOrThrow, MAX_DEFINITION_BYTES, PLATFORM_NAME } from '../definition/parse.js';
export type { ParsedDefinition, ParseDefinitionOptions } from '../definition/parse.js';
export { readDefinition } from '../definition/read.js';
export { checkPlatformFiles, runHashJobs } from '../definition/validate.js';
export type { FileCheck, HashJob, HashProgress, OnDiskCheck } from '../definition/validate.js';
export { HashCache, HASH_CACHE_FILE, sha256File } from '../definition/hash.js';
export { INVALID_CODES, UNSUPPORTED_CODES, isUnsupportedCode } from '../definition/reasons.js';
export type { InvalidCode, UnsupportedCode, ReasonCode } from '../definition/reasons.js';
export { HYPERVISOR_NAMES } from '../definition/types.js';
export type { HypervisorName, Reason } from '../definition/types.js';
export { parseXmlTree, XmlScanner, XmlSyntaxError, decodeXmlText } from '../definition/xml-scan.js';

export { probeHost, realProbes, probeHwAccel, probeHypervisor, findExecutable, ProbeCache } from '../host/probes.js';
export type { HostInfo, HostProbes, HwAccel, HypervisorInfo, ProbeHostOptions } from '../host/probes.js';
export { detectHostPlatforms, resolveHostPlatforms, checkPlatformName, scanFor32BitElf } from '../host/platforms.js';
export type { PlatformDetectProbes, HostPlatformOptions } from '../host/platforms.js';
export { parseHypervisorVersion } from '../host/version.js';
export { normaliseArch } from '../host/arch.js';

export { discoverPlatforms, discoveryToJson, checkDataDir, DATA_DIR_ERRORS, PROBE_CACHE_FILE } from './discover.js';
export type { DiscoverOptions, DiscoveredPlatform, DiscoveryResult, PlatformStatus } from './discover.js';
export { evaluateRequirements } from './requirements.js';
export { installPlatform } from './install.js';
export type { InstallOptions, InstallResult } from './install.js';
export { verifyPlatforms } from './verify.js';
export type { VerifyOptions, VerifyResult, VerifiedPlatform, Verdict } from './verify.js';

export { patchSchedulerRequest, readRequestPlatforms, advertisedNames, alternatePlatformsXml } from '../scheduler/request.js';
export type { PatchResult, RequestPlatforms } from '../scheduler/request.js';

export { chooseBackend, orderedManagers, readBackendOrder, noBackendReasons, BACKEND_ORDER_FILE } from './backend.js';
export type { BackendChoice, BackendCandidate, BackendOrder } from './backend.js';
export type { ManagerDefinition, PlatformDefinition, PlatformRequirements } from '../definition/types.js';
