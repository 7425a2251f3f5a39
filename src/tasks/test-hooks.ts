/**
 * Crash points for the kill-at-every-step test (test/crash.test.ts). Not part of the public API: the
 * CLI installs the hook from ALTPLAT_TEST_CRASH_AT; the library only calls `hook(point)`.
 */
let current: ((point: string) => void) | undefined;

export function setTestHook(fn: ((point: string) => void) | undefined): void {
  current = fn;
}

export function testHook(point: string): void {
  current?.(point);
}
