import type { Command } from 'commander';

/** Placeholder: the `run` verb is registered by its issue's implementation. */
export function registerRun(_program: Command): void {}
