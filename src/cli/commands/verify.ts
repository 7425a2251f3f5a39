import type { Command } from 'commander';

/** Placeholder: the `verify` verb is registered by its issue's implementation. */
export function registerVerify(_program: Command): void {}
