import { describe, expect, it } from "@effect/vitest"
import { makeRateLimiter, take } from "../../src/domain/RateLimit.js"

const takeAll = (limiter: ReturnType<typeof makeRateLimiter>, nowMs: number): number => {
  let n = 0
  while (take(limiter, nowMs)) n++
  return n
}

describe("RateLimit", () => {
  it("starts full, refills at its rate, never beyond its burst", () => {
    const limiter = makeRateLimiter(4, 3, 1000)
    expect(takeAll(limiter, 1000)).toBe(3)
    expect(takeAll(limiter, 1249)).toBe(0) // 0.996 of a token
    expect(takeAll(limiter, 1250)).toBe(1)
    expect(takeAll(limiter, 1750)).toBe(2)
    expect(takeAll(limiter, 60_000)).toBe(3)
  })

  it("a clock that steps back counts as no time passed, and refills from its new reading", () => {
    const limiter = makeRateLimiter(2, 2, 0)
    expect(takeAll(limiter, 3_600_000)).toBe(2)
    // an hour back: nothing to give at once, but the bucket does not wait for the old reading to come round again
    expect(takeAll(limiter, 0)).toBe(0)
    expect(takeAll(limiter, 500)).toBe(1)
    expect(takeAll(limiter, 1500)).toBe(2)
  })
})
