import type { Command } from 'commander';

/** Placeholder: the `task` verb is registered by its issue's implementation. */
export function registerTask(_program: Command): void {}
