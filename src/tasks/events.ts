import { EventEmitter } from 'node:events';
import type { ProcessState } from '../ipc/contract.js';
import type { ExitDecision } from './exit-rules.js';
import type { TaskStep } from './journal.js';
import type { ResultReport } from './report.js';

/** Where a task stands for its scheduler. */
export type TaskState = 'queued' | 'running' | 'suspended' | 'quit' | 'finished';

interface Base {
  /** The result's name. */
  task: string;
  masterUrl: string;
}

export interface StateEvent extends Base { step: TaskStep; state: TaskState }
export interface ProgressEvent extends Base { state: ProcessState; fractionDone: number; elapsed: number }
export interface ExitEvent extends Base { decision: ExitDecision; code: number | null; signal: NodeJS.Signals | null }
export interface TrickleUpEvent extends Base { file: string }
export type ReportEvent = ResultReport & { masterUrl: string };

/** The client's events and their payloads: a wrong name or payload type does not compile. */
export interface AltplatEvents {
  state: StateEvent;
  progress: ProgressEvent;
  exit: ExitEvent;
  trickle_up: TrickleUpEvent;
  report: ReportEvent;
}

export type AltplatEventName = keyof AltplatEvents;

/** A typed face over node's EventEmitter (an event map, never `any`). */
export class TypedEmitter<M extends { [K in keyof M]: unknown }> {
  private readonly ee = new EventEmitter();

  constructor() {
    this.ee.setMaxListeners(0);
  }

  on<K extends keyof M & string>(event: K, listener: (payload: M[K]) => void): this {
    this.ee.on(event, listener as (p: unknown) => void);
    return this;
  }

  once<K extends keyof M & string>(event: K, listener: (payload: M[K]) => void): this {
    this.ee.once(event, listener as (p: unknown) => void);
    return this;
  }

  off<K extends keyof M & string>(event: K, listener: (payload: M[K]) => void): this {
    this.ee.off(event, listener as (p: unknown) => void);
    return this;
  }

  protected emit<K extends keyof M & string>(event: K, payload: M[K]): void {
    this.ee.emit(event, payload);
  }
}
