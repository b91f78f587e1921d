/** Small statistics and formatting helpers shared by the benchmarks. */

export interface Summary {
  readonly n: number
  readonly median: number
  readonly min: number
  readonly max: number
}

const sorted = (values: ReadonlyArray<number>): Array<number> => [...values].sort((a, b) => a - b)

/** The median (the mean of the two middle values for an even count); NaN for no values. */
export const median = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const s = sorted(values)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * Nearest-rank percentile (p in 0..100): the smallest value with at least p% of the values at or below it, so a p99
 * over 200 pings is the second-largest RTT, an actually observed one. NaN for no values.
 */
export const percentile = (values: ReadonlyArray<number>, p: number): number => {
  if (values.length === 0) return Number.NaN
  const s = sorted(values)
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)))
  return s[rank - 1]!
}

export const summarize = (values: ReadonlyArray<number>): Summary => ({
  n: values.length,
  median: median(values),
  min: values.length === 0 ? Number.NaN : Math.min(...values),
  max: values.length === 0 ? Number.NaN : Math.max(...values)
})

/** About three significant digits (no decimals from 100 up), "-" for NaN and infinities. */
export const fmt = (value: number): string => {
  if (!Number.isFinite(value)) return "-"
  const abs = Math.abs(value)
  if (abs >= 100) return value.toFixed(0)
  if (abs >= 10) return value.toFixed(1)
  if (abs >= 1) return value.toFixed(2)
  return value.toFixed(3)
}

/** "median (min-max)", or just the value when there was one repetition. */
export const fmtSummary = (s: Summary): string =>
  s.n === 0 ? "-" : s.n === 1 || s.min === s.max ? fmt(s.median) : `${fmt(s.median)} (${fmt(s.min)}-${fmt(s.max)})`

/** Plain-text table: the first column left-aligned, the others right-aligned. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const all = [header, ...rows]
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)))
  const line = (r: ReadonlyArray<string>) =>
    r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd()
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  return [line(header), rule, ...rows.map(line)].join("\n")
}

/** A file-name-safe UTC timestamp: 2024-05-01T12-30-05Z. */
export const stamp = (date: Date): string => date.toISOString().replace(/\.\d+Z$/, "Z").replace(/:/g, "-")
