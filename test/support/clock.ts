/**
 * A Clock whose wall reading (milliseconds) and monotonic reading (nanoseconds) the test moves apart, as an NTP step
 * does on a real host. Both start at `startMs`; its sleeps are real ones.
 */
import { Clock, Effect } from "effect"

export interface SteppingClock {
  readonly clock: Clock.Clock
  /** Time passes: both readings move forward by `ms`. */
  readonly pass: (ms: number) => void
  /** The wall clock is set `ms` forward (negative: back); the monotonic clock does not move. */
  readonly stepWall: (ms: number) => void
}

export const steppingClock = (startMs: number): SteppingClock => {
  let wallMs = startMs
  let monotonicMs = startMs
  const nanos = () => BigInt(monotonicMs) * 1_000_000n
  return {
    clock: {
      [Clock.ClockTypeId]: Clock.ClockTypeId,
      unsafeCurrentTimeMillis: () => wallMs,
      currentTimeMillis: Effect.sync(() => wallMs),
      unsafeCurrentTimeNanos: nanos,
      currentTimeNanos: Effect.sync(nanos),
      sleep: Clock.make().sleep
    },
    pass: (ms) => {
      wallMs += ms
      monotonicMs += ms
    },
    stepWall: (ms) => {
      wallMs += ms
    }
  }
}
