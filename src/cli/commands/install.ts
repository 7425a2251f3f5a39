import type { Command } from 'commander';

/** Placeholder: the `install` verb is registered by its issue's implementation. */
export function registerInstall(_program: Command): void {}
