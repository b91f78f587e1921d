import { describe, expect, it } from "vitest"
import * as Stats from "../../bench/lib/Stats.js"

describe("bench statistics", () => {
  it("median of odd and even counts, unsorted input left alone", () => {
    const xs = [5, 1, 3]
    expect(Stats.median(xs)).toBe(3)
    expect(xs).toEqual([5, 1, 3])
    expect(Stats.median([4, 1, 3, 2])).toBe(2.5)
    expect(Stats.median([])).toBeNaN()
  })

  it("nearest-rank percentile picks an observed value", () => {
    const rtts = Array.from({ length: 200 }, (_, i) => i + 1) // 1..200
    expect(Stats.percentile(rtts, 99)).toBe(198)
    expect(Stats.percentile(rtts, 50)).toBe(100)
    expect(Stats.percentile(rtts, 100)).toBe(200)
    expect(Stats.percentile([7, 3], 0)).toBe(3)
    expect(Stats.percentile([0.2, 0.9, 0.1], 99)).toBe(0.9)
  })

  it("summarizes and formats median (min-max)", () => {
    const s = Stats.summarize([1.62, 1.81, 1.7])
    expect(s).toEqual({ n: 3, median: 1.7, min: 1.62, max: 1.81 })
    expect(Stats.fmtSummary(s)).toBe("1.70 (1.62-1.81)")
    expect(Stats.fmtSummary(Stats.summarize([21.3]))).toBe("21.3")
    expect(Stats.fmtSummary(Stats.summarize([]))).toBe("-")
    expect(Stats.fmt(1234.5)).toBe("1235")
    expect(Stats.fmt(0.0456)).toBe("0.046")
  })

  it("aligns a table: first column left, the rest right", () => {
    const text = Stats.table(["figure", "value"], [["a", "1"], ["longer", "22.5"]])
    expect(text.split("\n")).toEqual([
      "figure  value",
      "------  -----",
      "a           1",
      "longer   22.5"
    ])
  })

  it("stamps file names without colons", () => {
    expect(Stats.stamp(new Date("2024-05-01T12:30:05.123Z"))).toBe("2024-05-01T12-30-05Z")
  })
})
