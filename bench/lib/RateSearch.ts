/**
 * The highest offered packet rate a path carries with at most a given share lost: the "throughput" of RFC 2544
 * section 26.1 (there with zero loss; a small tolerance here, since a 2-core host running both ends and the
 * traffic generator drops the odd packet whenever the scheduler runs something else for a few milliseconds).
 * A binary search between nothing and a ceiling, one trial per step.
 */
import { Effect } from "effect"

export interface Trial {
  readonly offeredPps: number
  readonly deliveredPps: number
  readonly lostPercent: number
}

export interface SearchOptions {
  /** The highest rate worth trying (e.g. what the sender reaches unpaced); tried first. */
  readonly ceiling: number
  /** Halvings of the interval after the ceiling; the answer is within ceiling / 2^steps of the true one. */
  readonly steps: number
  /** A trial passes when at most this share of its packets was lost (a NaN loss fails). */
  readonly maxLossPercent: number
}

export interface SearchResult {
  /** The passing trial at the highest offered rate, if any passed. */
  readonly best: Trial | undefined
  /** Every trial in the order run. */
  readonly trials: ReadonlyArray<Trial>
}

export const passes = (trial: Trial, maxLossPercent: number): boolean =>
  Number.isFinite(trial.lostPercent) && trial.lostPercent <= maxLossPercent

/** Runs `trial` at the ceiling, then bisects [0, ceiling] `steps` times around the pass/fail boundary. */
export const search = <E, R>(
  trial: (pps: number) => Effect.Effect<Trial, E, R>,
  o: SearchOptions
): Effect.Effect<SearchResult, E, R> =>
  Effect.gen(function*() {
    const trials: Array<Trial> = []
    let best: Trial | undefined
    const run = (pps: number) =>
      Effect.map(trial(Math.max(1, Math.round(pps))), (t) => {
        trials.push(t)
        const ok = passes(t, o.maxLossPercent)
        if (ok && (best === undefined || t.offeredPps > best.offeredPps)) best = t
        return ok
      })
    if (yield* run(o.ceiling)) return { best, trials }
    let low = 0
    let high = o.ceiling
    for (let i = 0; i < o.steps; i++) {
      const mid = (low + high) / 2
      if (yield* run(mid)) low = mid
      else high = mid
    }
    return { best, trials }
  })
