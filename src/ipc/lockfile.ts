import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';

/**
 * boinc_lockfile, the slot lock every BOINC app takes at start (api/boinc_api.cpp
 * boinc_init_options_general; lib/filesys.cpp FILE_LOCK): open the file O_WRONLY|O_CREAT 0664 and
 * take an fcntl F_SETLK write lock on the whole file; unlock = close, then delete the file.
 *
 * Node has no fcntl. An flock(2) or an O_EXCL marker would not be seen by the real API, so the lock
 * is held by a tiny perl process (perl is Essential on Debian and ships with macOS) that takes the
 * same fcntl lock, reports it on stdout and then holds it until its stdin closes, which also happens
 * when our process dies, so a crashed manager never leaves the slot locked. The real API's F_SETLK
 * fails against it, and ours fails against the real API's.
 */
export const LOCK_FILE_NAME = 'boinc_lockfile'; // api/boinc_api.cpp LOCKFILE

// struct flock is packed by hand: glibc 64-bit layout (short, short, pad, off_t, off_t, pid_t) or
// the BSD/macOS layout (off_t, off_t, pid_t, short, short). ENOSYS counts as success, as in FILE_LOCK.
const HELPER = String.raw`
use strict; use Fcntl;
my $f = shift @ARGV;
sysopen(my $fh, $f, O_WRONLY|O_CREAT, 0664) or do { print "error $!\n"; exit 2 };
my $fl = $^O eq 'darwin' || $^O =~ /bsd/
  ? pack('q q l s s', 0, 0, 0, F_WRLCK, 0)
  : pack('s s x4 q q l x4', F_WRLCK, 0, 0, 0, 0);
$| = 1;
if (fcntl($fh, F_SETLK, $fl) || $!{ENOSYS}) { print "locked\n"; } else { print "busy $!\n"; exit 1; }
my $b; while (sysread(STDIN, $b, 64)) {}
`;

export class SlotLock {
  private constructor(readonly file: string, private helper: ChildProcess | undefined) {}

  /**
   * One attempt, like FILE_LOCK::lock: resolves to a held lock, or undefined when another process
   * holds it. AltplatError IPC_LOCK_FAILED when the lock cannot be tried at all.
   */
  static async tryLock(slotDir: string, fileName: string = LOCK_FILE_NAME): Promise<SlotLock | undefined> {
    const file = path.join(slotDir, fileName);
    const child = spawn('perl', ['-e', HELPER, file], { stdio: ['pipe', 'pipe', 'ignore'] });
    const answer = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.once('error', reject);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
      child.once('exit', () => resolve(out.trim()));
    }).catch((e: unknown) => {
      throw new AltplatError('IPC_LOCK_FAILED', `cannot run perl to lock ${file}: ${(e as Error).message}`,
        { file, errno: errnoCode(e) }, { cause: e });
    });
    if (answer === 'locked') {
      // Neither the helper nor its pipes may keep a finished manager alive.
      child.unref();
      child.stdout!.destroy();
      (child.stdin as Socket).unref();
      return new SlotLock(file, child);
    }
    child.stdin!.destroy();
    if (answer.startsWith('busy')) return undefined;
    throw new AltplatError('IPC_LOCK_FAILED', `cannot lock ${file}: ${answer || 'lock helper failed'}`, { file });
  }

  get held(): boolean {
    return this.helper !== undefined;
  }

  /**
   * FILE_LOCK::unlock: give the lock up and delete the file. `keepFile` leaves the file (a lock that
   * others may be waiting to take on the same inode, such as the client's data-dir lock).
   */
  async unlock(opts: { keepFile?: boolean } = {}): Promise<void> {
    const helper = this.helper;
    if (!helper) return;
    this.helper = undefined;
    if (!opts.keepFile) await fsp.rm(this.file, { force: true });
    const exited = helper.exitCode !== null ? Promise.resolve() : new Promise<void>((r) => helper.once('exit', () => r()));
    // While we wait, the helper must count as pending work, or Node may end the process first.
    helper.ref();
    helper.stdin!.end();
    await exited;
  }
}
