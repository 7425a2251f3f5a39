import { AltplatError, type AltplatErrorCode } from '../errors.js';
import { cpuModelProblem, machineTypeProblem } from './cpu-baseline.js';
import { checkRelativePath } from './paths.js';
import { isSemver, isSemverRange } from './semver.js';
import { HYPERVISOR_NAMES, type HypervisorRequirement, type ManagerDefinition, type PlatformDefinition, type PlatformFile, type PlatformRequirements, type Reason } from './types.js';
import { parseXmlTree, XmlSyntaxError, type XmlElement } from './xml-scan.js';

/** Definitions larger than this are refused before parsing. */
export const MAX_DEFINITION_BYTES = 1 << 20;

/** 1-64 of [A-Za-z0-9._-], not starting with '.' (so never `.`, `..` or a hidden folder). */
export const PLATFORM_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;

export interface ParseDefinitionOptions {
  /** Absolute path of the platform folder (goes into the result's `dir`). */
  dir: string;
  /** The folder's name; the definition's <name> must equal it. Omit to skip that check (install). */
  folderName?: string;
}

/** What could be read of a definition: `definition` when it is sound, else the reasons it is not. */
export interface ParsedDefinition {
  definition?: PlatformDefinition;
  /** As much as could be read, for listings of broken platforms. */
  name?: string;
  version?: string;
  userFriendlyName?: string;
  managerFile?: string;
  /** Backend names, in file order, as far as they could be read. */
  managerNames?: string[];
  /** The first manager's `<cpu_model>` / `<machine_type>` when declared and sound. */
  cpuModel?: string;
  machineType?: string;
  reasons: Reason[];
  warnings: string[];
}

const KNOWN: Record<string, ReadonlySet<string>> = {
  alt_platform: new Set(['name', 'user_friendly_name', 'version', 'manager', 'requires', 'file']),
  manager: new Set(['name', 'file_name', 'cmdline', 'cpu_model', 'machine_type', 'cleanup_cmdline', 'requires']),
  requires: new Set(['hypervisor', 'arch', 'hw_accel', 'min_ram_mb']),
  hypervisor: new Set(['name', 'version']),
  file: new Set(['name', 'nbytes', 'sha256', 'shared']),
};

/**
 * Parse and check the text of an `alt_platform.xml` (format: docs/PLATFORM_FORMAT.md). Nothing on disk
 * is looked at; `validatePlatformFiles` does that. Never throws for a bad definition: every problem found
 * becomes a Reason (all of them, not just the first, so a volunteer can fix them in one go).
 *
 * @example
 * const parsed = parseDefinition(text, { dir: '/var/lib/boinc-client/alt_platforms/x', folderName: 'x' });
 * if (parsed.definition) console.log(parsed.definition.manager.fileName);
 * else for (const r of parsed.reasons) console.log(r.code, r.message);
 */
export function parseDefinition(text: string, opts: ParseDefinitionOptions): ParsedDefinition {
  const out: ParsedDefinition = { reasons: [], warnings: [] };
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MAX_DEFINITION_BYTES) {
    out.reasons.push({ code: 'DEF_TOO_LARGE', message: `alt_platform.xml is ${bytes} bytes; definitions over ${MAX_DEFINITION_BYTES} bytes (1 MiB) are refused` });
    return out;
  }
  let root: XmlElement;
  try {
    root = parseXmlTree(text);
  } catch (e) {
    if (!(e instanceof XmlSyntaxError)) throw e;
    out.reasons.push(e.kind === 'doctype'
      ? { code: 'DEF_DOCTYPE', message: `alt_platform.xml contains a DOCTYPE or ENTITY declaration at line ${e.line}; altplat never processes them (they can expand into gigabytes)` }
      : { code: 'DEF_NOT_WELL_FORMED', message: `alt_platform.xml is not well-formed XML: ${e.message}` });
    return out;
  }
  if (root.name !== 'alt_platform') {
    out.reasons.push({ code: 'DEF_MISSING_ELEMENT', message: `the root element is <${root.name}>; an alternate platform definition starts with <alt_platform>` });
    return out;
  }
  const r = new Reader(out);
  r.unknown(root, 'alt_platform', '');

  const name = r.text(root, 'name', true);
  if (name !== undefined) {
    out.name = name;
    if (!PLATFORM_NAME.test(name)) {
      r.add('DEF_BAD_NAME', `platform name "${name}" must be 1 to 64 of A-Z a-z 0-9 . _ - and must not start with "."`);
    } else if (opts.folderName !== undefined && name !== opts.folderName) {
      r.add('DEF_NAME_MISMATCH', `platform name "${name}" differs from its folder name "${opts.folderName}"; rename one of them`);
    }
  }
  const userFriendlyName = r.text(root, 'user_friendly_name', false);
  if (userFriendlyName !== undefined && userFriendlyName !== '') out.userFriendlyName = userFriendlyName;
  const version = r.text(root, 'version', true);
  if (version !== undefined) {
    out.version = version;
    if (!isSemver(version)) r.add('DEF_BAD_VERSION', `version "${version}" is not a semantic version such as 1.0.0`);
  }

  let managerFile: string | undefined;
  const managers: ManagerDefinition[] = [];
  const managerEls = root.children.filter((c) => c.name === 'manager');
  if (managerEls.length === 0) r.add('DEF_MISSING_ELEMENT', 'required element <manager> is missing');
  let managersSound = managerEls.length > 0;
  const explicitNames = new Set<string>();
  let managersSeenCpu = false;
  for (const el of managerEls) {
    r.unknown(el, 'manager', 'manager/');
    const before = out.reasons.length;
    const fileName = r.text(el, 'file_name', true, 'manager/');
    let file: string | undefined;
    if (fileName !== undefined) {
      const p = checkRelativePath(fileName, 'manager <file_name>');
      if (p.ok) file = p.path;
      else out.reasons.push(p.reason);
    }
    if (file !== undefined && managerFile === undefined) managerFile = out.managerFile = file;
    const mname = r.text(el, 'name', false, 'manager/');
    if (mname !== undefined && mname !== '') {
      if (!BACKEND_NAME.test(mname)) r.add('DEF_BAD_NAME', `manager <name> "${mname}" must be 1 to 64 of a-z A-Z 0-9 . _ - (line ${el.line})`);
      else if (explicitNames.has(mname)) r.add('DEF_DUPLICATE_ELEMENT', `two managers are named "${mname}" (line ${el.line}); backend names must differ`);
      explicitNames.add(mname);
    }
    const cmdline = r.text(el, 'cmdline', false, 'manager/') ?? '';
    // The platform's virtual CPU: checked here so a value QEMU would read as options never reaches it.
    const cpu = r.text(el, 'cpu_model', false, 'manager/');
    let cpuModel: string | undefined;
    if (cpu !== undefined) {
      const problem = cpuModelProblem(cpu);
      if (problem) r.add('DEF_BAD_CPU_MODEL', `<manager/cpu_model>: ${problem}`);
      else cpuModel = cpu;
    }
    const machine = r.text(el, 'machine_type', false, 'manager/');
    let machineType: string | undefined;
    if (machine !== undefined) {
      const problem = machineTypeProblem(machine);
      if (problem) r.add('DEF_BAD_MACHINE_TYPE', `<manager/machine_type>: ${problem}`);
      else machineType = machine;
    }
    if (managers.length === 0 && !managersSeenCpu) {
      managersSeenCpu = true;
      if (cpuModel !== undefined) out.cpuModel = cpuModel;
      if (machineType !== undefined) out.machineType = machineType;
    }
    const cleanup = r.text(el, 'cleanup_cmdline', false, 'manager/');
    const reqEl = r.one(el, 'requires', false, 'manager/');
    const req = reqEl ? parseRequires(r, out, reqEl, 'manager/requires/') : undefined;
    if (out.reasons.length > before || file === undefined) {
      managersSound = false;
      continue;
    }
    managers.push({
      ...(mname ? { name: mname } : {}),
      fileName: file,
      cmdline,
      ...(cpuModel !== undefined ? { cpuModel } : {}),
      ...(machineType !== undefined ? { machineType } : {}),
      ...(cleanup ? { cleanupCmdline: cleanup } : {}),
      ...(req ? { requires: req } : {}),
    });
  }

  const requires = r.one(root, 'requires', false);
  const topRequires: PlatformRequirements = requires ? parseRequires(r, out, requires, 'requires/') : { hypervisors: [], arch: [], hwAccel: false };
  out.managerNames = backendNames(managers, topRequires);

  const files: PlatformFile[] = [];
  const seen = new Set<string>();
  for (const f of root.children) {
    if (f.name !== 'file') continue;
    r.unknown(f, 'file', 'file/');
    const fname = r.text(f, 'name', true, 'file/');
    if (fname === undefined) continue;
    const p = checkRelativePath(fname, '<file> name');
    if (!p.ok) {
      out.reasons.push(p.reason);
      continue;
    }
    if (seen.has(p.path)) {
      r.add('DEF_DUPLICATE_ELEMENT', `file "${p.path}" is listed twice`);
      continue;
    }
    seen.add(p.path);
    const file: PlatformFile = { name: p.path, shared: r.bool(f, 'shared', 'file/') };
    const nbytes = r.text(f, 'nbytes', false, 'file/');
    if (nbytes !== undefined) {
      const n = /^\d{1,16}(\.0*)?$/.test(nbytes) ? Number(nbytes) : NaN;
      if (Number.isSafeInteger(n)) file.nbytes = n;
      else r.add('DEF_BAD_VALUE', `<nbytes> "${nbytes}" of file "${p.path}" must be a whole number of bytes`);
    }
    const sha = r.text(f, 'sha256', false, 'file/');
    if (sha !== undefined) {
      if (/^[0-9a-fA-F]{64}$/.test(sha)) file.sha256 = sha.toLowerCase();
      else r.add('DEF_BAD_VALUE', `<sha256> of file "${p.path}" must be 64 hexadecimal digits`);
    }
    files.push(file);
  }

  if (out.reasons.length === 0 && name !== undefined && version !== undefined && managersSound && managers[0] !== undefined) {
    out.definition = {
      name,
      ...(out.userFriendlyName !== undefined ? { userFriendlyName: out.userFriendlyName } : {}),
      version,
      manager: managers[0],
      managers,
      requires: topRequires,
      files,
      dir: opts.dir,
      ignoredElements: r.ignored,
    };
  }
  for (const e of r.ignored) out.warnings.push(`unknown element <${e}> ignored`);
  return out;
}

/**
 * The backends' names, in file order: each manager's <name>, else derived from what it needs (its
 * first required hypervisor, else the definition's, else `default`), made unique with `-2`, `-3`. A
 * definition without <name>s keeps its ManagerDefinition objects exactly as before; the names are
 * what a volunteer writes in a backend order and what `altplat list` shows.
 */
export function backendNames(managers: readonly ManagerDefinition[], top: PlatformRequirements): string[] {
  const used = new Set(managers.map((m) => m.name).filter((n): n is string => n !== undefined));
  return managers.map((m) => {
    if (m.name) return m.name;
    const base = m.requires?.hypervisors[0]?.name ?? top.hypervisors[0]?.name ?? 'default';
    let n = base;
    for (let i = 2; used.has(n); i++) n = `${base}-${i}`;
    used.add(n);
    return n;
  });
}

/** Backend names: what a volunteer writes in a backend order. */
export const BACKEND_NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/;

/** A <requires> element (top level, or inside a <manager>): every kind of child must hold. */
function parseRequires(r: Reader, out: ParsedDefinition, requires: XmlElement, prefix: string): PlatformRequirements {
  const hypervisors: HypervisorRequirement[] = [];
  const arch: string[] = [];
  let minRamMb: number | undefined;
  r.unknown(requires, 'requires', prefix);
  for (const h of requires.children) {
    if (h.name !== 'hypervisor') continue;
    r.unknown(h, 'hypervisor', `${prefix}hypervisor/`);
    const hname = r.text(h, 'name', true, `${prefix}hypervisor/`);
    const range = r.text(h, 'version', false, `${prefix}hypervisor/`);
    if (hname === undefined) continue;
    const lower = hname.toLowerCase();
    if (!(HYPERVISOR_NAMES as readonly string[]).includes(lower)) {
      out.warnings.push(`unknown hypervisor "${hname}" (known: ${HYPERVISOR_NAMES.join(', ')}); it never satisfies <requires>`);
    }
    if (range !== undefined && range !== '' && !isSemverRange(range)) {
      r.add('DEF_BAD_RANGE', `hypervisor ${hname} <version> "${range}" is not a semver range such as >=7.2.0`);
      continue;
    }
    hypervisors.push(range !== undefined && range !== '' ? { name: lower, versionRange: range } : { name: lower });
  }
  for (const a of requires.children) {
    if (a.name !== 'arch') continue;
    const v = r.leaf(a, prefix);
    if (v === undefined) continue;
    if (v === '') r.add('DEF_BAD_VALUE', `<${prefix}arch> (line ${a.line}) is empty; name an architecture such as x86_64`);
    else arch.push(v);
  }
  const hwAccel = r.bool(requires, 'hw_accel', prefix);
  const ram = r.text(requires, 'min_ram_mb', false, prefix);
  if (ram !== undefined) {
    // BOINC writes numbers with %f (`512.000000`); a whole number in that form is accepted, as for <nbytes>.
    if (/^\d{1,9}(\.0*)?$/.test(ram)) minRamMb = Number(ram);
    else r.add('DEF_BAD_VALUE', `<min_ram_mb> "${ram}" must be a whole number of megabytes`);
  }
  return { hypervisors, arch, hwAccel, ...(minRamMb !== undefined ? { minRamMb } : {}) };
}

/** Helpers that read elements BOINC-style and record what is wrong. */
class Reader {
  readonly ignored: string[] = [];
  constructor(private readonly out: ParsedDefinition) {}

  add(code: string, message: string): void {
    this.out.reasons.push({ code, message });
  }

  unknown(el: XmlElement, kind: string, prefix: string): void {
    const known = KNOWN[kind];
    for (const c of el.children) {
      if (!known.has(c.name) && !this.ignored.includes(prefix + c.name)) this.ignored.push(prefix + c.name);
    }
  }

  /** The single child `tag` (DEF_DUPLICATE_ELEMENT when repeated, DEF_MISSING_ELEMENT when required and absent). */
  one(el: XmlElement, tag: string, required: boolean, prefix = ''): XmlElement | undefined {
    let found: XmlElement | undefined;
    for (const c of el.children) {
      if (c.name !== tag) continue;
      if (found) {
        this.add('DEF_DUPLICATE_ELEMENT', `<${prefix}${tag}> appears more than once (line ${c.line})`);
        return undefined;
      }
      found = c;
    }
    if (!found && required) {
      this.add('DEF_MISSING_ELEMENT', `required element <${prefix}${tag}> is missing${el.name !== 'alt_platform' ? ` in <${el.name}> at line ${el.line}` : ''}`);
    }
    return found;
  }

  /** Trimmed text of an element that must hold text only. */
  leaf(el: XmlElement, prefix: string): string | undefined {
    if (el.children.length > 0) {
      this.add('DEF_BAD_VALUE', `<${prefix}${el.name}> (line ${el.line}) must contain text, not elements`);
      return undefined;
    }
    return el.text.trim();
  }

  text(el: XmlElement, tag: string, required: boolean, prefix = ''): string | undefined {
    const c = this.one(el, tag, required, prefix);
    if (!c) return undefined;
    const v = this.leaf(c, prefix);
    if (v === '' && required) {
      this.add('DEF_MISSING_ELEMENT', `required element <${prefix}${tag}> (line ${c.line}) is empty`);
      return undefined;
    }
    return v;
  }

  /**
   * BOINC booleans (lib/parse.cpp XML_PARSER::parse_bool): `<x/>` is true; otherwise the text must be a
   * whole C integer as `strtol(buf, &end, 0)` reads it (decimal, `0x` hex, leading-0 octal, a sign) and
   * is true when non-zero — so `<x>0</x>`, `<x>00</x>`, `<x>0x0</x>` are false and `<x>1</x>`, `<x>2</x>`
   * true. BOINC leaves a flag it cannot parse (`<x>false</x>`) unset; reading that as "required" would
   * invert what the author meant, so it is DEF_BAD_VALUE instead. `<x></x>` is the same XML as `<x/>`.
   */
  bool(el: XmlElement, tag: string, prefix: string): boolean {
    const c = this.one(el, tag, false, prefix);
    if (!c) return false;
    const v = this.leaf(c, prefix);
    if (v === undefined) return false;
    if (v === '') return true;
    const m = /^[+-]?(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))$/.exec(v);
    if (!m) {
      this.add('DEF_BAD_VALUE', `<${prefix}${tag}> "${v}" (line ${c.line}) is not a BOINC boolean: write <${tag}/> or <${tag}>1</${tag}> for yes, <${tag}>0</${tag}> or nothing for no`);
      return false;
    }
    return /[1-9a-fA-F]/.test(m[1] ?? m[2] ?? m[3] ?? '');
  }
}

/** Throwing variant for callers that need a sound definition (the lifecycle, install). */
export function parseDefinitionOrThrow(text: string, opts: ParseDefinitionOptions): PlatformDefinition {
  const parsed = parseDefinition(text, opts);
  if (parsed.definition) return parsed.definition;
  const first = parsed.reasons[0];
  throw new AltplatError(first.code as AltplatErrorCode, parsed.reasons.map((x) => x.message).join('; '), { reasons: parsed.reasons });
}
