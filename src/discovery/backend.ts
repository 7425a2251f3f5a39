import * as fs from 'node:fs';
import * as path from 'node:path';
import { backendNames } from '../definition/parse.js';
import type { ManagerDefinition, PlatformDefinition, Reason } from '../definition/types.js';
import type { HostInfo } from '../host/probes.js';
import { evaluateRequirements } from './requirements.js';

/**
 * A volunteer's backend preference: backend names, most wanted first, either for every platform (an
 * array) or per platform name with `*` for the rest. Backends not named keep the definition's order
 * after the named ones; names a definition lacks are ignored.
 */
export type BackendOrder = readonly string[] | Readonly<Record<string, readonly string[]>>;

/** The CLI's backend order file (docs/PLATFORM_FORMAT.md "Several backends"). */
export const BACKEND_ORDER_FILE = path.join('altplat', 'backend_order.json');

export interface BackendCandidate {
  name: string;
  /** `chosen` runs; `ok` would work but comes later; `unsupported` needs what the host lacks. */
  status: 'chosen' | 'ok' | 'unsupported';
  reasons: Reason[];
}

export interface BackendChoice {
  chosen: string | null;
  /** In the order they were considered (the volunteer's order, then the definition's). */
  candidates: BackendCandidate[];
}

function orderFor(order: BackendOrder | undefined, platform: string): readonly string[] {
  if (!order) return [];
  if (Array.isArray(order)) return order as readonly string[];
  const rec = order as Readonly<Record<string, readonly string[]>>;
  return rec[platform] ?? rec['*'] ?? [];
}

/** The definition's backends with their names, in the order they are considered. */
export function orderedManagers(def: PlatformDefinition, order?: BackendOrder): Array<{ name: string; manager: ManagerDefinition }> {
  const all = def.managers?.length ? def.managers : [def.manager];
  const names = backendNames(all, def.requires);
  const named = all.map((manager, i) => ({ name: names[i]!, manager }));
  const wanted = orderFor(order, def.name);
  const first = wanted.map((n) => named.find((m) => m.name === n)).filter((m): m is { name: string; manager: ManagerDefinition } => m !== undefined);
  return [...new Set([...first, ...named])];
}

/**
 * The first backend whose own <requires> hold on `host` (the definition's top-level <requires> are
 * judged separately, for the platform as a whole). Every other backend says why it was not chosen.
 */
export function chooseBackend(def: PlatformDefinition, host: HostInfo, order?: BackendOrder): { choice: BackendChoice; manager?: ManagerDefinition } {
  let chosen: ManagerDefinition | undefined;
  const candidates: BackendCandidate[] = [];
  let chosenName: string | null = null;
  for (const { name, manager } of orderedManagers(def, order)) {
    const reasons = manager.requires ? evaluateRequirements(manager.requires, host) : [];
    const status = reasons.length > 0 ? 'unsupported' : chosen ? 'ok' : 'chosen';
    if (status === 'chosen') {
      chosen = manager;
      chosenName = name;
    }
    candidates.push({ name, status, reasons });
  }
  return { choice: { chosen: chosenName, candidates }, ...(chosen ? { manager: chosen } : {}) };
}

/**
 * The reasons a platform none of whose backends works is unsupported: a single backend's reasons as
 * they are (so a one-manager definition reads as before), several backends' each named.
 */
export function noBackendReasons(choice: BackendChoice): Reason[] {
  if (choice.candidates.length === 1) return choice.candidates[0]!.reasons;
  return choice.candidates.flatMap((c) => c.reasons.map((r) => ({ code: r.code, message: `backend ${c.name}: ${r.message}` })));
}

/**
 * Reads `<data>/altplat/backend_order.json`: `["podman", "qemu-tcg"]` or
 * `{"x86_64-pc-linux-gnu": ["qemu-tcg"], "*": ["podman"]}`. Absent = no preference; unreadable or
 * malformed = no preference, with a warning (a volunteer's typo never stops discovery).
 */
export function readBackendOrder(dataDir: string, warnings: string[]): BackendOrder | undefined {
  const file = path.join(dataDir, BACKEND_ORDER_FILE);
  let text: string;
  try {
    const st = fs.lstatSync(file);
    if (!st.isFile() || st.size > 64 << 10) {
      warnings.push(`${file} is not a small regular file: backend order ignored`);
      return undefined;
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') warnings.push(`${file} cannot be read: backend order ignored`);
    return undefined;
  }
  try {
    const v = JSON.parse(text) as unknown;
    const names = (a: unknown): a is string[] => Array.isArray(a) && a.every((x) => typeof x === 'string');
    if (names(v)) return v;
    if (v && typeof v === 'object' && Object.values(v).every(names)) return v as Record<string, string[]>;
  } catch {
    // reported below
  }
  warnings.push(`${file} is not a JSON list of backend names (or an object of such lists by platform): backend order ignored`);
  return undefined;
}
