import { createRequire } from 'node:module';

/**
 * The three semver functions altplat needs, loaded from their own modules on first use: importing the
 * whole `semver` package costs ~16 ms of CLI start, these three ~8 ms, and a scan without version ranges
 * loads only the first.
 */
const require = createRequire(import.meta.url);

type ValidFn = typeof import('semver/functions/valid.js');
type ValidRangeFn = typeof import('semver/ranges/valid.js');
type SatisfiesFn = typeof import('semver/functions/satisfies.js');

let valid: ValidFn | undefined;
let validRange: ValidRangeFn | undefined;
let satisfies: SatisfiesFn | undefined;

// Definitions repeat the same few strings ("1.0.0", ">=7.2.0"): answers are remembered (bounded).
const memo = new Map<string, boolean>();
function remember(key: string, answer: () => boolean): boolean {
  let a = memo.get(key);
  if (a === undefined) {
    if (memo.size >= 4096) memo.clear();
    a = answer();
    memo.set(key, a);
  }
  return a;
}

/** Is `v` a semantic version (a leading `v` is tolerated, as semver does)? */
export function isSemver(v: string): boolean {
  return remember(`v${v}`, () => {
    valid ??= require('semver/functions/valid') as ValidFn;
    return valid(v) !== null;
  });
}

/** Is `r` a range semver can parse? */
export function isSemverRange(r: string): boolean {
  return remember(`r${r}`, () => {
    validRange ??= require('semver/ranges/valid') as ValidRangeFn;
    return validRange(r) !== null;
  });
}

/** Does version `v` satisfy range `r` (prereleases included, as a hypervisor version is what it is)? */
export function semverSatisfies(v: string, r: string): boolean {
  satisfies ??= require('semver/functions/satisfies') as SatisfiesFn;
  return satisfies(v, r, { includePrerelease: true });
}
