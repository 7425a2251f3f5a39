import type { Command } from 'commander';

/** Placeholder: the `request` verb is registered by its issue's implementation. */
export function registerRequest(_program: Command): void {}
