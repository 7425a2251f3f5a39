import * as fs from 'node:fs';
import * as path from 'node:path';
import { AltplatError, errnoCode } from '../errors.js';

/**
 * BOINC's shared memory between client and app, as the 8192-byte file `boinc_mmap_file` in the slot
 * (lib/app_ipc.h SHARED_MEM, MSG_CHANNEL; lib/shmem.cpp create_shmem_mmap / attach_shmem_mmap).
 *
 * Node cannot mmap, so both sides here use positioned reads and writes on a file descriptor kept
 * open. On Linux (and macOS) a file's pages live once in the page cache, so pread/pwrite see and are
 * seen by another process's MAP_SHARED mapping of the same file at once; test/ipc-interop.test.ts
 * checks this against the real libboinc-api. (It would not hold for Windows, where BOINC uses a named
 * file mapping instead of a file.)
 */
export { MMAP_FILE_NAME } from '../boinc.js'; // lib/app_ipc.h MMAPPED_FILE_NAME, defined once
import { MMAP_FILE_NAME } from '../boinc.js';
export const MSG_CHANNEL_SIZE = 1024; // lib/app_ipc.h
export const SHARED_MEM_SIZE = 8 * MSG_CHANNEL_SIZE; // sizeof(SHARED_MEM)
/** Longest text a channel carries: strlcpy(buf+1, msg, MSG_CHANNEL_SIZE-1) keeps 1022 chars + NUL. */
export const MAX_MSG_LENGTH = MSG_CHANNEL_SIZE - 2;

/** The eight channels in SHARED_MEM order; each lives at `channel * 1024`. */
export enum Channel {
  PROCESS_CONTROL_REQUEST = 0, // client -> app
  PROCESS_CONTROL_REPLY = 1, // app -> client (unused)
  GRAPHICS_REQUEST = 2, // client -> app (unused)
  GRAPHICS_REPLY = 3, // app -> client
  HEARTBEAT = 4, // client -> app
  APP_STATUS = 5, // app -> client
  TRICKLE_UP = 6, // app -> client
  TRICKLE_DOWN = 7, // client -> app
}

export const CHANNEL_NAMES: readonly string[] = [
  'process_control_request', 'process_control_reply', 'graphics_request', 'graphics_reply',
  'heartbeat', 'app_status', 'trickle_up', 'trickle_down',
];

/**
 * Create (mode 0666, as create_shmem_mmap does) or reuse `<slot>/boinc_mmap_file` and zero its first
 * 8192 bytes, as the client does before every start (APP_CLIENT_SHM::reset_msgs). A longer file is
 * never truncated. Returns the file's path.
 */
export async function createMmapFile(slotDir: string): Promise<string> {
  const file = path.join(slotDir, MMAP_FILE_NAME);
  // Synchronous, as the channel calls below: an open and an 8 KiB write into the page cache.
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o666);
  } catch (e) {
    throw new AltplatError('IPC_MMAP_CREATE_FAILED', `cannot create ${file}: ${(e as Error).message}`,
      { file, errno: errnoCode(e) }, { cause: e });
  }
  try {
    // Writing 8192 zero bytes at offset 0 both zeroes the channels and extends a short file.
    fs.writeSync(fd, Buffer.alloc(SHARED_MEM_SIZE), 0, SHARED_MEM_SIZE, 0);
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

/** Trim to what a C channel can hold, counting bytes (BOINC messages are ASCII). */
function encode(text: string): Buffer {
  const bytes = Buffer.from(text, 'utf8');
  return bytes.length > MAX_MSG_LENGTH ? bytes.subarray(0, MAX_MSG_LENGTH) : bytes;
}

/**
 * Channel operations on an open boinc_mmap_file, with MSG_CHANNEL's semantics (lib/app_ipc.cpp):
 * a sender refuses to overwrite an unread message; the flag byte goes last so the reader never sees a
 * half-written text; a reader copies the text out and then clears the flag.
 * All calls are synchronous on purpose: each is one or two tiny syscalls, and no other code of ours
 * can interleave with a half-done send.
 */
export class MmapChannels {
  private fd: number | undefined;
  private readonly flag = Buffer.alloc(1);
  private readonly slot = Buffer.alloc(MSG_CHANNEL_SIZE - 1);

  private constructor(readonly file: string, fd: number) {
    this.fd = fd;
  }

  /** Open an existing boinc_mmap_file read-write; refuse one shorter than 8192 bytes. */
  static open(file: string): MmapChannels {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r+');
    } catch (e) {
      throw new AltplatError('IPC_MMAP_OPEN_FAILED', `cannot open ${file}: ${(e as Error).message}`,
        { file, errno: errnoCode(e) }, { cause: e });
    }
    const size = fs.fstatSync(fd).size;
    if (size < SHARED_MEM_SIZE) {
      fs.closeSync(fd);
      throw new AltplatError('IPC_MMAP_TOO_SMALL',
        `${file} is ${size} bytes; BOINC's shared memory needs ${SHARED_MEM_SIZE}`, { file, size });
    }
    return new MmapChannels(file, fd);
  }

  private get handle(): number {
    if (this.fd === undefined) throw new AltplatError('IPC_CLOSED', `${this.file} is already closed`);
    return this.fd;
  }

  hasMsg(ch: Channel): boolean {
    fs.readSync(this.handle, this.flag, 0, 1, ch * MSG_CHANNEL_SIZE);
    return this.flag[0] !== 0;
  }

  /** MSG_CHANNEL::send_msg: false (and nothing written) when the previous message is still unread. */
  sendMsg(ch: Channel, text: string): boolean {
    if (this.hasMsg(ch)) return false;
    this.sendMsgOverwrite(ch, text);
    return true;
  }

  /** MSG_CHANNEL::send_msg_overwrite: text and NUL first, then the flag byte. */
  sendMsgOverwrite(ch: Channel, text: string): void {
    const body = encode(text);
    const out = Buffer.alloc(body.length + 1);
    body.copy(out);
    fs.writeSync(this.handle, out, 0, out.length, ch * MSG_CHANNEL_SIZE + 1);
    fs.writeSync(this.handle, Buffer.from([1]), 0, 1, ch * MSG_CHANNEL_SIZE);
  }

  /** The unread message without consuming it (undefined if the flag is clear). */
  peekMsg(ch: Channel): string | undefined {
    if (!this.hasMsg(ch)) return undefined;
    fs.readSync(this.handle, this.slot, 0, this.slot.length, ch * MSG_CHANNEL_SIZE + 1);
    let end = this.slot.indexOf(0);
    if (end < 0 || end > MAX_MSG_LENGTH) end = MAX_MSG_LENGTH;
    return this.slot.subarray(0, end).toString('utf8');
  }

  /** MSG_CHANNEL::get_msg: the unread message (then the flag is cleared), or undefined. */
  getMsg(ch: Channel): string | undefined {
    const text = this.peekMsg(ch);
    if (text === undefined) return undefined;
    fs.writeSync(this.handle, Buffer.from([0]), 0, 1, ch * MSG_CHANNEL_SIZE);
    return text;
  }

  close(): void {
    if (this.fd === undefined) return;
    fs.closeSync(this.fd);
    this.fd = undefined;
  }
}
