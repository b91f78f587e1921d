import { Either } from "effect"
import { describe, expect, it } from "vitest"
import * as Options from "../../bench/lib/Options.js"

const ok = <A>(e: Either.Either<A, string>): A => {
  if (Either.isLeft(e)) throw new Error(e.left)
  return e.right
}

describe("npm run bench options", () => {
  it("defaults to 3 x 10 s", () => {
    expect(ok(Options.parse([], {}))).toEqual(Options.DEFAULTS)
  })

  it("--quick is 2 s and one repetition; flags and environment override it, flags first", () => {
    expect(ok(Options.parse(["--quick"], {}))).toMatchObject({ duration: 2, repetitions: 1, quick: true })
    expect(ok(Options.parse([], { KIWITUN_BENCH_QUICK: "1" }))).toMatchObject({ duration: 2, quick: true })
    expect(ok(Options.parse(["--quick", "--duration", "5"], {}))).toMatchObject({ duration: 5, repetitions: 1 })
    expect(ok(Options.parse(["--quick"], { KIWITUN_BENCH_DURATION: "4" }))).toMatchObject({ duration: 4 })
    expect(ok(Options.parse(["--duration=7"], { KIWITUN_BENCH_DURATION: "4" }))).toMatchObject({ duration: 7 })
    expect(ok(Options.parse(["--repetitions", "5", "--pings", "100", "--idle", "3"], {}))).toMatchObject({
      repetitions: 5,
      pings: 100,
      idleSeconds: 3
    })
  })

  it("sizes the ping flood: 20,000 pings, 2,000 with --quick, or --flood-pings / KIWITUN_BENCH_FLOOD_PINGS", () => {
    expect(ok(Options.parse([], {})).floodPings).toBe(20000)
    expect(ok(Options.parse(["--quick"], {})).floodPings).toBe(2000)
    expect(ok(Options.parse(["--flood-pings", "500"], {})).floodPings).toBe(500)
    expect(ok(Options.parse(["--quick"], { KIWITUN_BENCH_FLOOD_PINGS: "700" })).floodPings).toBe(700)
    expect(ok(Options.parse(["--flood-pings=9"], { KIWITUN_BENCH_FLOOD_PINGS: "700" })).floodPings).toBe(9)
    expect(Either.isLeft(Options.parse(["--flood-pings", "0"], {}))).toBe(true)
    expect(Options.usage).toContain("--flood-pings")
  })

  it("rejects what it does not understand", () => {
    expect(Options.parse(["--duration", "0"], {}))
      .toEqual(Either.left(`--duration must be a positive integer, got "0"`))
    expect(Either.isLeft(Options.parse(["--duration", "1.5"], {}))).toBe(true)
    expect(Either.isLeft(Options.parse(["--duration"], {}))).toBe(true)
    expect(Either.isLeft(Options.parse(["--fast"], {}))).toBe(true)
    expect(Either.isLeft(Options.parse([], { KIWITUN_BENCH_REPETITIONS: "three" }))).toBe(true)
    expect(Options.parse(["--help"], {})).toEqual(Either.left("help"))
  })

  it("passes extra daemon arguments, from the flag or else the environment", () => {
    expect(ok(Options.parse(["--daemon-args", "--log-level 5"], {})).daemonArgs).toEqual(["--log-level", "5"])
    expect(ok(Options.parse([], { KIWITUN_BENCH_DAEMON_ARGS: " -t 32 " })).daemonArgs).toEqual(["-t", "32"])
    expect(ok(Options.parse(["--daemon-args="], { KIWITUN_BENCH_DAEMON_ARGS: "-t 32" })).daemonArgs).toEqual([])
  })

  it("runs the threaded variant on --threaded or KIWITUN_BENCH_THREADED=1, else kiwitun", () => {
    expect(ok(Options.parse([], {})).threaded).toBe(false)
    expect(ok(Options.parse(["--threaded", "--quick"], {})).threaded).toBe(true)
    expect(ok(Options.parse([], { KIWITUN_BENCH_THREADED: "1" })).threaded).toBe(true)
    expect(ok(Options.parse([], { KIWITUN_BENCH_THREADED: "0" })).threaded).toBe(false)
  })

  it("measures the C reference unless --no-reference or KIWITUN_BENCH_REFERENCE=0", () => {
    expect(ok(Options.parse([], {})).reference).toBe(true)
    expect(ok(Options.parse(["--quick"], {})).reference).toBe(true)
    expect(ok(Options.parse(["--no-reference", "--quick"], {}))).toMatchObject({ reference: false, quick: true })
    expect(ok(Options.parse([], { KIWITUN_BENCH_REFERENCE: "0" })).reference).toBe(false)
    expect(ok(Options.parse([], { KIWITUN_BENCH_REFERENCE: "false" })).reference).toBe(false)
    expect(ok(Options.parse([], { KIWITUN_BENCH_REFERENCE: "1" })).reference).toBe(true)
    expect(ok(Options.parse(["--no-reference"], { KIWITUN_BENCH_REFERENCE: "1" })).reference).toBe(false)
    expect(Either.isLeft(Options.parse(["--reference=no"], {}))).toBe(true)
    expect(Options.usage).toContain("--no-reference")
    expect(Options.usage).toContain("KIWITUN_BENCH_REFERENCE=0")
  })
})

describe("npm run bench:dataplane options", () => {
  it("defaults, --quick, --rounds, --round-ms, --only", () => {
    expect(ok(Options.parseDataplane([]))).toEqual(Options.DATAPLANE_DEFAULTS)
    expect(ok(Options.parseDataplane(["--quick", "--rounds=5"]))).toMatchObject({ rounds: 5, roundMs: 50, quick: true })
    expect(ok(Options.parseDataplane(["--round-ms", "100"]))).toMatchObject({ rounds: 7, roundMs: 100 })
    expect(ok(Options.parseDataplane(["--only", "layers,code"])).parts).toEqual(["code", "layers"])
    expect(Either.isLeft(Options.parseDataplane(["--only", "code,kernel"]))).toBe(true)
    expect(Either.isLeft(Options.parseDataplane(["--rounds", "-1"]))).toBe(true)
  })
})
