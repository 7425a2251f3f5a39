import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Engine } from './engine.js';

/** Repository under which platform root file systems are imported; the tag is the tarball's sha256. */
export const IMAGE_REPOSITORY = 'localhost/altplat-rootfs';

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * The engine image for the platform's rootfs tarball, imported on first use. The tag is the tarball's
 * own sha256, so an image in the engine's store (which lies outside the data dir, where `altplat
 * verify` cannot see it) is only ever used for exactly the bytes the platform lists; a changed
 * tarball gets a new tag and is imported again. Nothing is pulled from a registry.
 */
export async function ensureImage(engine: Engine, rootfsTar: string, log?: (l: string) => void): Promise<string> {
  const sha = await sha256File(rootfsTar);
  const ref = `${IMAGE_REPOSITORY}:${sha}`;
  const have = await engine.run(['image', 'inspect', '--format', '{{.Id}}', ref]);
  if (have.code === 0) return ref;
  const t0 = Date.now();
  await engine.must(['import', rootfsTar, ref], 300_000);
  log?.(`imported ${rootfsTar} as ${ref} in ${Date.now() - t0} ms`);
  return ref;
}
