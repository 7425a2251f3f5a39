import { semverSatisfies } from '../definition/semver.js';
import { HYPERVISOR_NAMES, type HypervisorRequirement, type PlatformRequirements, type Reason } from '../definition/types.js';
import { normaliseArch } from '../host/arch.js';
import type { HostInfo, HypervisorInfo } from '../host/probes.js';

/**
 * Which requirements of a definition do not hold on `host` — one Reason per kind of requirement that
 * fails (hypervisor, arch, hw_accel, RAM), saying what was needed and what was found. Empty = supported.
 */
export function evaluateRequirements(req: PlatformRequirements, host: HostInfo): Reason[] {
  const reasons: Reason[] = [];
  if (req.hypervisors.length > 0) {
    const verdicts = req.hypervisors.map((h) => judge(h, host.hypervisors.find((i) => i.name === h.name)));
    if (!verdicts.some((v) => v.ok)) {
      const anyFound = verdicts.some((v) => v.found);
      const needs = req.hypervisors.map(describeNeed);
      reasons.push({
        code: anyFound ? 'REQ_HYPERVISOR_VERSION' : 'REQ_HYPERVISOR_MISSING',
        message: `needs ${needs.length === 1 ? needs[0] : `one of: ${needs.join(', ')}`}; ${verdicts.map((v) => v.what).join('; ')}`,
      });
    }
  }
  if (req.arch.length > 0) {
    const wanted = req.arch.map(normaliseArch);
    // An injected HostInfo may carry any spelling (`amd64`), so the host side is normalised too.
    if (!wanted.includes(normaliseArch(host.arch))) {
      reasons.push({ code: 'REQ_ARCH', message: `runs on ${req.arch.join(' or ')} hosts; this host is ${host.arch}` });
    }
  }
  if (req.hwAccel && !host.hwAccel.usable) {
    reasons.push({ code: 'REQ_HW_ACCEL', message: `needs hardware virtualization, which is not usable here: ${host.hwAccel.detail}` });
  }
  if (req.minRamMb !== undefined && host.ramMb < req.minRamMb) {
    reasons.push({ code: 'REQ_RAM', message: `needs ${req.minRamMb} MiB of RAM; this host has ${host.ramMb} MiB` });
  }
  return reasons;
}

function describeNeed(h: HypervisorRequirement): string {
  return h.versionRange ? `${h.name} ${h.versionRange}` : h.name;
}

function judge(h: HypervisorRequirement, info: HypervisorInfo | undefined): { ok: boolean; found: boolean; what: string } {
  if (!(HYPERVISOR_NAMES as readonly string[]).includes(h.name)) {
    return { ok: false, found: false, what: `altplat does not know how to find "${h.name}"` };
  }
  if (!info || info.path === null) return { ok: false, found: false, what: `${h.name} was not found` };
  if (info.error) return { ok: false, found: true, what: `${h.name} at ${info.path} could not be checked: ${info.error}` };
  if (!h.versionRange) return { ok: true, found: true, what: '' };
  if (info.version === null) return { ok: false, found: true, what: `the version of ${h.name} at ${info.path} is unreadable ("${info.raw}")` };
  if (semverSatisfies(info.version, h.versionRange)) return { ok: true, found: true, what: '' };
  return { ok: false, found: true, what: `found ${h.name} ${info.version} at ${info.path}` };
}
