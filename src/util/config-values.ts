import * as path from 'node:path';
import { AltplatError } from '../errors.js';
import { childText, type XmlNode } from './xml.js';

/**
 * The value rules both reference backends' config files (vm_config.xml, container_config.xml) follow:
 * bounded integers and paths that stay inside the working copy. Errors carry the file's code prefix.
 */
export function configValueReaders(file: string, codePrefix: 'VMCONFIG' | 'CONTAINER_CONFIG') {
  /** `<tag>` as an integer in min..max, `dflt` when absent. */
  const num = (node: XmlNode, tag: string, dflt: number, min: number, max: number): number => {
    const t = childText(node, tag);
    if (t === undefined) return dflt;
    const n = Number(t);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new AltplatError(`${codePrefix}_BAD_VALUE`, `${file}: <${tag}> must be an integer in ${min}..${max}, got '${t}'`, { tag, value: t });
    }
    return n;
  };
  /** Resolves a path written in the config against `baseDir`, refusing ones that leave it. */
  const inside = (baseDir: string, rel: string, tag: string): string => {
    const abs = path.resolve(baseDir, rel);
    if (path.isAbsolute(rel) || (abs !== baseDir && !abs.startsWith(baseDir + path.sep))) {
      throw new AltplatError(`${codePrefix}_BAD_PATH`, `${file}: <${tag}> '${rel}' must be a relative path inside ${baseDir}`, { tag, value: rel });
    }
    return abs;
  };
  return { num, inside };
}
