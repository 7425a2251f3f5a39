import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';
import type { ReplyFileInfo } from '../scheduler/reply-types.js';

export async function md5File(file: string): Promise<string> {
  const h = createHash('md5');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * Check a project file against its `<nbytes>` and `<md5_cksum>` before any task uses it
 * (client/cs_files.cpp FILE_INFO::verify_file; task_files_present in client/app_start.cpp checks size).
 * Throws INPUT_MISSING / INPUT_SIZE_MISMATCH / INPUT_MD5_MISMATCH.
 */
export async function verifyProjectFile(file: string, info: ReplyFileInfo): Promise<void> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') {
      throw new AltplatError('INPUT_MISSING', `file ${info.name} is not in the project dir (${file}); the embedding client must download it, or pass --files DIR`, { file: info.name });
    }
    throw e;
  }
  if (!st.isFile()) throw new AltplatError('INPUT_MISSING', `${file} is not a regular file`, { file: info.name });
  if (info.nbytes !== undefined && st.size !== info.nbytes) {
    throw new AltplatError('INPUT_SIZE_MISMATCH', `file ${info.name} has ${st.size} bytes; the reply says ${info.nbytes}`, { file: info.name, nbytes: st.size, expected: info.nbytes });
  }
  if (info.md5 !== undefined) {
    const md5 = await md5File(file);
    if (md5 !== info.md5) {
      throw new AltplatError('INPUT_MD5_MISMATCH', `file ${info.name} has md5 ${md5}; the reply says ${info.md5}`, { file: info.name, md5, expected: info.md5 });
    }
  }
}

/**
 * `altplat run --files DIR`: bring the reply's input and app files from a local folder into the project
 * dir (altplat never downloads). A file already present and correct is left alone; a staged file is
 * checked first, so a wrong file never lands in the project dir. Outputs are never staged.
 */
export async function stageFiles(fromDir: string, projectDir: string, infos: ReplyFileInfo[]): Promise<string[]> {
  await fsp.mkdir(projectDir, { recursive: true });
  const staged: string[] = [];
  for (const info of infos) {
    if (info.isOutput) continue;
    const dest = path.join(projectDir, info.name);
    try {
      await verifyProjectFile(dest, info);
      continue;
    } catch (e) {
      if (!(e instanceof AltplatError)) throw e;
    }
    const src = path.join(fromDir, info.name);
    try {
      await fsp.access(src);
    } catch {
      continue; // not supplied; the check before the task reports it
    }
    await verifyProjectFile(src, info);
    const tmp = `${dest}.staging.${process.pid}`;
    await fsp.copyFile(src, tmp);
    if (info.executable) await fsp.chmod(tmp, 0o755);
    await fsp.rename(tmp, dest);
    staged.push(info.name);
  }
  return staged;
}
