import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Ref, Schedule, TestClock } from "effect"
import { decode } from "../src/domain/Config.js"
import type { NotifyField } from "../src/domain/SdNotify.js"
import { makeStatusPusher, modeOf, remoteOf, STATUS_INTERVAL, uptimeClock } from "../src/Service.js"
import { steppingClock } from "./support/clock.js"

const cfg = (raw: Parameters<typeof decode>[0]) => {
  const c = decode(raw)
  if (Either.isLeft(c)) throw new Error(c.left.message)
  return c.right
}

describe("modeOf / remoteOf", () => {
  it("names the modes and the remote as the report shows them", () => {
    expect(modeOf(cfg({ v4: true }))).toBe("4in4")
    expect(modeOf(cfg({ v6: true }))).toBe("6in4")
    expect(modeOf(cfg({ v4: true, v6: true }))).toBe("4in4+6in4")
    expect(remoteOf(cfg({ v4: true, remote: "192.0.2.2" }))).toBe("192.0.2.2")
    expect(remoteOf(cfg({ v4: true, remote: "peer.example" }))).toBe("peer.example")
    expect(remoteOf(cfg({ v4: true }))).toBe("dynamic")
  })
})

describe("makeStatusPusher", () => {
  const setup = Effect.gen(function*() {
    const summary = yield* Ref.make("a")
    const sent: Array<ReadonlyArray<NotifyField>> = []
    const push = yield* makeStatusPusher(Ref.get(summary), (fields) => Effect.sync(() => void sent.push(fields)))
    return { summary, sent, push }
  })

  it.effect("sends extra fields with the first STATUS=, then STATUS= only when the summary changed", () =>
    Effect.gen(function*() {
      const { summary, sent, push } = yield* setup
      yield* push([["READY", "1"]])
      expect(sent).toEqual([[["READY", "1"], ["STATUS", "a"]]])
      yield* push()
      expect(sent).toHaveLength(1)
      yield* Ref.set(summary, "b")
      yield* push()
      expect(sent[1]).toEqual([["STATUS", "b"]])
      yield* push([["STOPPING", "1"]])
      expect(sent[2]).toEqual([["STOPPING", "1"]])
    }))

  it.effect("repeated on the status interval, it follows the counters", () =>
    Effect.gen(function*() {
      const { summary, sent, push } = yield* setup
      yield* push([["READY", "1"]])
      yield* push().pipe(Effect.repeat(Schedule.spaced(STATUS_INTERVAL)), Effect.fork)
      yield* Ref.set(summary, "b")
      yield* TestClock.adjust(STATUS_INTERVAL)
      yield* Ref.set(summary, "b")
      yield* TestClock.adjust(STATUS_INTERVAL)
      yield* Ref.set(summary, "c")
      yield* TestClock.adjust(STATUS_INTERVAL)
      expect(sent.map((f) => f.find(([k]) => k === "STATUS")?.[1])).toEqual(["a", "b", "c"])
    }))
})

describe("uptimeClock", () => {
  it.effect("counts the seconds on the monotonic clock, whatever the wall clock does", () =>
    Effect.gen(function*() {
      const { clock, pass, stepWall } = steppingClock(1_800_000_000_000)
      const uptime = yield* Effect.withClock(uptimeClock, clock)
      expect(yield* Effect.withClock(uptime, clock)).toBe(0)
      // an NTP step of an hour back while 90 s pass, then one of a day forward while 10 s more pass
      stepWall(-3_600_000)
      pass(90_000)
      expect(yield* Effect.withClock(uptime, clock)).toBe(90)
      stepWall(86_400_000)
      pass(10_000)
      expect(yield* Effect.withClock(uptime, clock)).toBe(100)
    }))
})
