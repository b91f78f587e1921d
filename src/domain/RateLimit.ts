/**
 * Token bucket, driven by a clock value passed in (milliseconds), so it is pure and testable with any clock.
 */
export interface RateLimiter {
  readonly ratePerSecond: number
  readonly burst: number
  tokens: number
  lastMs: number
}

export const makeRateLimiter = (ratePerSecond: number, burst: number, nowMs: number): RateLimiter => ({
  ratePerSecond,
  burst,
  tokens: burst,
  lastMs: nowMs
})

/**
 * Takes one token if there is one. A clock reading before the last one (a clock that stepped back) counts as no time
 * passed and becomes the new reference: the bucket refills from there instead of waiting for the old reading.
 */
export const take = (limiter: RateLimiter, nowMs: number): boolean => {
  if (nowMs > limiter.lastMs) {
    limiter.tokens = Math.min(limiter.burst, limiter.tokens + ((nowMs - limiter.lastMs) * limiter.ratePerSecond) / 1000)
    limiter.lastMs = nowMs
  } else if (nowMs < limiter.lastMs) {
    limiter.lastMs = nowMs
  }
  if (limiter.tokens >= 1) {
    limiter.tokens -= 1
    return true
  }
  return false
}
