import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { configValueReaders } from '../util/config-values.js';
import { childBool, childText, parseXml, type XmlNode } from '../util/xml.js';

export type EngineName = 'podman' | 'docker';

/** The platform folder's `container_config.xml` (docs/CONTAINER_PLATFORM.md); paths made absolute. */
export interface ContainerConfig {
  /** The deterministic rootfs tarball (a `<shared/>` file of the platform). */
  rootfs: string;
  /** The engine's configuration file (podman: CONTAINERS_CONF), or undefined for its own defaults. */
  engineConf?: string;
  engine: EngineName;
  /** Where the program runs and its files live inside the container: the VM's guest_dir. */
  guestDir: string;
  /** Most processes the container may hold (a fork bomb stops there). */
  pidsLimit: number;
  /** Memory limit when init_data.xml gives no rsc_memory_bound. */
  defaultMemoryMb: number;
  /** Network for every job of the platform (default none: `--network=none`). */
  network: boolean;
}

const { num, inside } = configValueReaders('container_config.xml', 'CONTAINER_CONFIG');

export function parseContainerConfig(text: string, baseDir: string): ContainerConfig {
  const doc = parseXml(text, { what: 'container_config.xml', codePrefix: 'CONTAINER_CONFIG', maxBytes: 64 << 10 });
  const root = doc.container as XmlNode | undefined;
  if (!root || typeof root !== 'object') throw new AltplatError('CONTAINER_CONFIG_MISSING_ELEMENT', 'container_config.xml lacks <container>');
  const rootfs = childText(root, 'rootfs');
  if (!rootfs) throw new AltplatError('CONTAINER_CONFIG_MISSING_ELEMENT', 'container_config.xml lacks <rootfs>', { tag: 'rootfs' });
  const engine = (childText(root, 'engine') ?? 'podman') as EngineName;
  if (engine !== 'podman' && engine !== 'docker') {
    throw new AltplatError('CONTAINER_CONFIG_BAD_VALUE', `container_config.xml: <engine> must be podman or docker, got '${engine}'`, { tag: 'engine', value: engine });
  }
  const guestDir = childText(root, 'guest_dir') ?? '/work/job';
  if (!/^\/[A-Za-z0-9._/-]*$/.test(guestDir) || guestDir.split('/').includes('..') || guestDir === '/') {
    throw new AltplatError('CONTAINER_CONFIG_BAD_VALUE', 'container_config.xml: <guest_dir> must be an absolute path below /', { tag: 'guest_dir', value: guestDir });
  }
  const conf = childText(root, 'engine_conf');
  return {
    rootfs: inside(baseDir, rootfs, 'rootfs'),
    ...(conf ? { engineConf: inside(baseDir, conf, 'engine_conf') } : {}),
    engine,
    guestDir,
    pidsLimit: num(root, 'pids_limit', 256, 8, 1 << 20),
    defaultMemoryMb: num(root, 'memory_mb', 512, 16, 1 << 20),
    network: childBool(root, 'network'),
  };
}

export async function loadContainerConfig(file: string): Promise<ContainerConfig> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new AltplatError('CONTAINER_CONFIG_UNREADABLE', `cannot read container config ${file}: ${(e as Error).message}`, { file }, { cause: e });
  }
  return parseContainerConfig(text, path.dirname(path.resolve(file)));
}
