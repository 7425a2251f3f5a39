/** A mistake in how altplat was called (bad flag value, missing file argument): exit status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
