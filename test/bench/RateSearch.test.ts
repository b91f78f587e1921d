import { Effect, FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import * as RateSearch from "../../bench/lib/RateSearch.js"

/** A path that carries up to `capacity` packets per second and loses everything above. */
const path = (capacity: number, asked: Array<number>) => (pps: number) =>
  Effect.sync((): RateSearch.Trial => {
    asked.push(pps)
    const delivered = Math.min(pps, capacity)
    return { offeredPps: pps, deliveredPps: delivered, lostPercent: (100 * (pps - delivered)) / pps }
  })

describe("rate search", () => {
  it("a path faster than the ceiling: one trial, at the ceiling", () => {
    const asked: Array<number> = []
    const r = Effect.runSync(RateSearch.search(path(2e6, asked), { ceiling: 1e6, steps: 6, maxLossPercent: 1 }))
    expect(asked).toEqual([1e6])
    expect(r.best?.offeredPps).toBe(1e6)
  })

  it("bisects down to the capacity, never above it", () => {
    const asked: Array<number> = []
    const r = Effect.runSync(RateSearch.search(path(150_000, asked), { ceiling: 800_000, steps: 7, maxLossPercent: 0 }))
    expect(asked).toEqual([800_000, 400_000, 200_000, 100_000, 150_000, 175_000, 162_500, 156_250])
    expect(r.trials).toHaveLength(8)
    expect(r.best?.offeredPps).toBe(150_000)
  })

  it("the loss tolerance lets a trial just over capacity pass", () => {
    const asked: Array<number> = []
    // at 101,000 pps a 100,000 pps path loses 0.99%
    const r = Effect.runSync(RateSearch.search(path(100_000, asked), { ceiling: 101_000, steps: 3, maxLossPercent: 1 }))
    expect(r.best?.offeredPps).toBe(101_000)
    const strict = Effect.runSync(
      RateSearch.search(path(100_000, []), { ceiling: 101_000, steps: 3, maxLossPercent: 0.5 })
    )
    expect(strict.best?.offeredPps).toBeLessThan(100_001)
  })

  it("nothing passes: no best; an unreadable loss never passes", () => {
    const dead = () => Effect.succeed<RateSearch.Trial>({ offeredPps: 1, deliveredPps: 0, lostPercent: Number.NaN })
    const r = Effect.runSync(RateSearch.search(dead, { ceiling: 1000, steps: 4, maxLossPercent: 100 }))
    expect(r.best).toBeUndefined()
    expect(r.trials).toHaveLength(5)
  })

  it("a trial's failure ends the search with it", () => {
    const r = Effect.runSync(Effect.either(RateSearch.search(() => Effect.fail("iperf3 died"), {
      ceiling: 1000,
      steps: 4,
      maxLossPercent: 1
    })))
    expect(r._tag === "Left" && r.left).toBe("iperf3 died")
  })

  it("property: the answer is within ceiling / 2^steps below the capacity", () => {
    fc.assert(fc.property(
      fc.integer({ min: 1_000, max: 2_000_000 }),
      fc.integer({ min: 1_000, max: 2_000_000 }),
      fc.integer({ min: 1, max: 12 }),
      (capacity, ceiling, steps) => {
        const asked: Array<number> = []
        const r = Effect.runSync(RateSearch.search(path(capacity, asked), { ceiling, steps, maxLossPercent: 0 }))
        if (capacity >= ceiling) return asked.length === 1 && r.best?.offeredPps === ceiling
        const found = r.best?.offeredPps ?? 0
        return asked.length === steps + 1 && found <= capacity && capacity - found <= ceiling / 2 ** steps + 1
      }
    ))
  })
})
