import type { Channel, MmapChannels } from './mmap.js';

/**
 * The client's per-task queue for process-control messages (client/app.cpp MSG_QUEUE).
 * A message goes straight into the channel when nothing is queued and the channel is free;
 * otherwise it waits and `poll` retries the oldest one. `blockedSince` remembers when the queue
 * first had to hold a message, so the caller can decide the app is hung (MSG_QUEUE::timeout).
 */
export class MsgQueue {
  private readonly msgs: string[] = [];
  private blockedSince: number | undefined;

  constructor(private readonly channels: MmapChannels, private readonly channel: Channel) {}

  /** MSG_QUEUE::msg_queue_send. Returns true if the message went out at once. */
  send(msg: string, now: number): boolean {
    if (this.msgs.length === 0 && this.channels.sendMsg(this.channel, msg)) {
      this.blockedSince = undefined;
      return true;
    }
    this.msgs.push(msg);
    if (this.blockedSince === undefined) this.blockedSince = now;
    return false;
  }

  /** MSG_QUEUE::msg_queue_poll: retry the oldest queued message once. */
  poll(): void {
    if (this.msgs.length === 0) return;
    if (this.channels.sendMsg(this.channel, this.msgs[0])) {
      this.msgs.shift();
      // BOINC clears last_block after any delivery, so the 180 s restart only counts a channel
      // that takes nothing at all.
      this.blockedSince = undefined;
    }
  }

  /**
   * MSG_QUEUE::msg_queue_purge: drop `msg` if it is the newest queued message. This is how a
   * suspend cancels a resume that never reached the app (and vice versa).
   */
  purge(msg: string): boolean {
    if (this.msgs.length > 0 && this.msgs[this.msgs.length - 1] === msg) {
      this.msgs.pop();
      return true;
    }
    return false;
  }

  /** MSG_QUEUE::timeout: has a message been stuck for more than `ms`? */
  timedOut(now: number, ms: number): boolean {
    return this.blockedSince !== undefined && now - this.blockedSince > ms;
  }

  get pending(): readonly string[] {
    return this.msgs;
  }
}
