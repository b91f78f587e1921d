import { Either } from "effect"
import { describe, expect, it } from "vitest"
import * as Soak from "../../bench/lib/Soak.js"
import * as SoakOptions from "../../bench/lib/SoakOptions.js"

const plan: Soak.ChurnPlan = {
  ifname: "ktun0",
  gateway: "192.0.2.2",
  otherGateway: "192.0.2.3",
  live4: "198.51.100.2",
  live6: "2001:db8:1::2",
  routes4: 5,
  routes6: 3
}

const lines = (text: string) => text.trimEnd().split("\n")

describe("churnBatch", () => {
  it("adds, replaces with the other gateway, deletes, and starts over", () => {
    expect([0, 1, 2, 3, 4, 5].map(Soak.churnPhase)).toEqual(["add", "replace", "del", "add", "replace", "del"])
    const add = lines(Soak.churnBatch(plan, 0))
    expect(add.length).toBe(2 + 5 + 3)
    expect(add).toContain("route add 203.0.113.0/32 via 192.0.2.2 dev ktun0 onlink")
    expect(add).toContain("route add 203.0.113.3/32 via 192.0.2.2 dev ktun0 onlink table 44")
    expect(add).toContain("route add 2001:db8:100:2::/64 via ::ffff:192.0.2.2 dev ktun0 onlink")
    const replace = lines(Soak.churnBatch(plan, 1))
    expect(replace).toContain("route replace 203.0.113.4/32 via 192.0.2.3 dev ktun0 onlink")
    expect(replace).toContain("route replace 2001:db8:100:0::/64 via ::ffff:192.0.2.3 dev ktun0 onlink")
    const del = lines(Soak.churnBatch(plan, 2))
    expect(del).toContain("route del 203.0.113.3/32 table 44")
    expect(del).toContain("route del 2001:db8:100:1::/64")
    // nothing but the two live routes names a gateway in a deleting round
    expect(del.filter((l) => l.includes(" via ")).length).toBe(2)
  })

  it("replaces the routes the traffic uses every round with an equivalent one, never deleting them", () => {
    for (let round = 0; round < 6; round++) {
      const live = lines(Soak.churnBatch(plan, round)).slice(0, 2)
      expect(live[0]).toBe(
        `route replace 198.51.100.2/32 via 192.0.2.2 dev ktun0 onlink proto ${round % 2 === 0 ? "static" : "boot"}`
      )
      expect(live[1]).toBe(
        `route replace 2001:db8:1::2/128 via ${round % 2 === 0 ? "::ffff:" : "::"}192.0.2.2 dev ktun0 onlink`
      )
    }
  })

  it("names distinct prefixes for up to 256 IPv4 and 65536 IPv6 routes", () => {
    expect(Soak.bulk4(255)).toBe("203.0.113.255/32")
    expect(new Set(Array.from({ length: 65536 }, (_, i) => Soak.bulk6(i))).size).toBe(65536)
  })
})

describe("classifyLine", () => {
  it("accepts info and debug log lines, and nothing else", () => {
    expect(Soak.classifyLine("2026-01-01T00:00:00.000Z kiwitun[12]: info: tunnel up remote=192.0.2.1")).toBe("ok")
    expect(Soak.classifyLine("2026-01-01T00:00:00.000Z kiwitun[12]: debug: drop reason=x")).toBe("ok")
    expect(Soak.classifyLine("")).toBe("ok")
    expect(Soak.classifyLine("2026-01-01T00:00:00.000Z kiwitun[12]: warn: send failed")).toBe("unexpected")
    expect(Soak.classifyLine("2026-01-01T00:00:00.000Z kiwitun[12]: error: cannot mirror")).toBe("unexpected")
    expect(Soak.classifyLine("2026-01-01T00:00:00.000Z kiwitun[12]: fatal: boom")).toBe("unexpected")
    expect(Soak.classifyLine("(node:12) MaxListenersExceededWarning: Possible EventEmitter leak")).toBe("unexpected")
    expect(Soak.classifyLine("    at Object.<anonymous> (/x.js:1:1)")).toBe("unexpected")
  })
})

describe("rssFigures", () => {
  const points = (values: ReadonlyArray<number>, every = 10) => values.map((rssKb, i) => ({ t: i * every, rssKb }))

  it("compares the median of the minute after warm-up with the median of the last minute", () => {
    // A 60 s warm-up, then samples around 100 with a garbage-collector spike, ending around 103 with another.
    const warm = [50, 80, 90, 95, 97, 99]
    const first = [100, 130, 100, 99, 100, 102]
    const last = [104, 150, 102, 103, 103, 103]
    const r = Soak.rssFigures(points([...warm, ...first, 98, 100, 100, ...last]), 60, 60)
    expect(r.warmup).toEqual({ t: 60, rssKb: 100 })
    expect(r.end).toEqual({ t: 200, rssKb: 103 })
    expect(r.windowSeconds).toBe(60)
    expect(r.warmupMedianKb).toBe(100)
    expect(r.endMedianKb).toBe(103)
    expect(r.growthKb).toBe(3)
    expect([r.warmupFloorKb, r.endFloorKb, r.floorGrowthKb]).toEqual([99, 102, 3])
    expect(r.maxKb).toBe(150)
  })

  it("shortens the windows so that they never overlap, down to single samples", () => {
    const r = Soak.rssFigures(points([10, 20, 30, 40, 50]), 20)
    expect(r.windowSeconds).toBe(10)
    expect([r.warmupMedianKb, r.endMedianKb, r.growthKb]).toEqual([30, 50, 20])
    const one = Soak.rssFigures(points([10, 20]), 10)
    expect([one.windowSeconds, one.growthKb]).toEqual([0, 0])
  })

  it("makes the windows a fifth of the time after warm-up, from one to five minutes", () => {
    expect([0, 300, 600, 1000, 3540, 36000].map(Soak.defaultWindow)).toEqual([60, 60, 120, 200, 300, 300])
    const tenMinutes = Soak.rssFigures(points(Array.from({ length: 61 }, (_, i) => 100 + (i % 6 === 0 ? 0 : 50))), 60)
    expect(tenMinutes.windowSeconds).toBe(108)
    expect([tenMinutes.warmupFloorKb, tenMinutes.endFloorKb, tenMinutes.floorGrowthKb]).toEqual([100, 100, 0])
  })

  it("has no growth without samples after the warm-up, and a slope in kB per hour", () => {
    expect(Number.isNaN(Soak.rssFigures(points([1, 2]), 100).growthKb)).toBe(true)
    expect(Soak.slope([{ t: 0, rssKb: 0 }, { t: 3600, rssKb: 7200 }]) * 3600).toBe(7200)
    expect(Number.isNaN(Soak.slope([{ t: 5, rssKb: 1 }]))).toBe(true)
  })
})

describe("counter arithmetic", () => {
  it("delta keeps the keys that moved; addInto sums", () => {
    expect(Soak.delta({ a: 1, b: 2, c: 5 }, { a: 1, b: 7, d: 3 })).toEqual({ b: 5, c: -5, d: 3 })
    const into: Record<string, number> = { a: 1 }
    Soak.addInto(into, { a: 2, b: 3 })
    expect(into).toEqual({ a: 3, b: 3 })
  })

  it("hostileChecks pairs every reason aimed at with what the daemon counted", () => {
    expect(Soak.hostileChecks({ decap_ttl_zero: 20, decap_bad_source: 50 }, { decap_ttl_zero: 20, other: 4 }))
      .toEqual([
        { reason: "decap_bad_source", sent: 50, counted: 0 },
        { reason: "decap_ttl_zero", sent: 20, counted: 20 }
      ])
  })
})

describe("npm run soak options", () => {
  const ok = (argv: ReadonlyArray<string>) => {
    const r = SoakOptions.parse(argv)
    if (Either.isLeft(r)) throw new Error(r.left)
    return r.right
  }

  it("defaults to 10 minutes with a one-minute warm-up", () => {
    expect(ok([])).toEqual(SoakOptions.DEFAULTS)
    expect(ok([]).minutes).toBe(10)
  })

  it("takes a length in minutes (an hour, or a fraction), clipping the default warm-up to half of it", () => {
    expect(ok(["--minutes", "60"])).toMatchObject({ minutes: 60, warmupMinutes: 1 })
    expect(ok(["--minutes=1"])).toMatchObject({ minutes: 1, warmupMinutes: 0.5 })
    expect(ok(["--minutes", "0.5", "--sample", "5"])).toMatchObject({
      minutes: 0.5,
      warmupMinutes: 0.25,
      sampleSeconds: 5
    })
    expect(ok(["--churn-routes", "256,1000", "--pause-ms", "0", "--daemon-args", "--no-offload -t 32"])).toMatchObject({
      churnRoutes4: 256,
      churnRoutes6: 1000,
      transferPauseMs: 0,
      daemonArgs: ["--no-offload", "-t", "32"]
    })
  })

  it("refuses what it does not understand", () => {
    expect(SoakOptions.parse(["--minutes", "0"])).toEqual(Either.left(`--minutes takes a positive number, got "0"`))
    expect(Either.isLeft(SoakOptions.parse(["--minutes", "ten"]))).toBe(true)
    expect(Either.isLeft(SoakOptions.parse(["--sample", "1.5"]))).toBe(true)
    expect(Either.isLeft(SoakOptions.parse(["--warmup", "6"]))).toBe(true) // more than half of 10 minutes
    expect(Either.isLeft(SoakOptions.parse(["--churn-routes", "300,10"]))).toBe(true)
    expect(Either.isLeft(SoakOptions.parse(["--hostile"]))).toBe(true)
    expect(Either.isLeft(SoakOptions.parse(["--fast"]))).toBe(true)
    expect(SoakOptions.parse(["-h"])).toEqual(Either.left("help"))
  })
})
