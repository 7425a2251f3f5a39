import type { Command } from 'commander';

/** Placeholder: the `list` verb is registered by its issue's implementation. */
export function registerList(_program: Command): void {}
