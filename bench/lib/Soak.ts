/**
 * The pure parts of the soak test (bench/soak.ts): the route churn it feeds to `ip -batch`, how it reads the
 * daemons' log lines, and the figures of its summary (RSS growth after warm-up, counter and drop deltas, hostile
 * packets sent against the drops they caused).
 */

// ---------------------------------------------------------------------------------------------------------------
// Route churn

export interface ChurnPlan {
  /** The dynamic-mode daemon's tunnel device. */
  readonly ifname: string
  /** The peer's underlay address: the gateway of the routes traffic depends on. */
  readonly gateway: string
  /** An underlay address nobody holds: the other gateway bulk routes switch to. */
  readonly otherGateway: string
  /** Inner addresses of the peer that the soak's traffic goes to, each kept routed through the whole run. */
  readonly live4: string
  readonly live6: string
  readonly routes4: number
  readonly routes6: number
}

export type ChurnPhase = "add" | "replace" | "del"

/** Round 0 adds the bulk routes, round 1 replaces them, round 2 deletes them, round 3 adds them again, ... */
export const churnPhase = (round: number): ChurnPhase => (["add", "replace", "del"] as const)[round % 3]!

/** The bulk IPv4 prefixes: /32s in 203.0.113.0/24. */
export const bulk4 = (i: number): string => `203.0.113.${i}/32`
/** The bulk IPv6 prefixes: /64s in 2001:db8:100::/48. */
export const bulk6 = (i: number): string => `2001:db8:100:${i.toString(16)}::/64`

/** Every fourth bulk route goes to table 44 (the AMPRNet policy table), which a daemon without --table mirrors too. */
const table = (i: number): ReadonlyArray<string> => (i % 4 === 3 ? ["table", "44"] : [])

/**
 * The `ip -batch` lines of one churn round. The routes the traffic uses are replaced every round with an equivalent
 * one (IPv4: another `proto`; IPv6: the gateway written `::ffff:A.B.C.D` or `::A.B.C.D`, which behaviour.md says
 * both mean A.B.C.D), so the mirror handles real changes of the very entries being looked up, and a mistake in it
 * shows as failed transfers. The bulk routes are added, replaced with another gateway, and deleted in turn.
 */
export const churnBatch = (plan: ChurnPlan, round: number): string => {
  const dev = ["dev", plan.ifname, "onlink"]
  const lines: Array<ReadonlyArray<string>> = [
    ["route", "replace", `${plan.live4}/32`, "via", plan.gateway, ...dev, "proto", round % 2 === 0 ? "static" : "boot"],
    ["route", "replace", `${plan.live6}/128`, "via", `${round % 2 === 0 ? "::ffff:" : "::"}${plan.gateway}`, ...dev]
  ]
  const phase = churnPhase(round)
  const via4 = phase === "add" ? plan.gateway : plan.otherGateway
  const via6 = `::ffff:${via4}`
  for (let i = 0; i < plan.routes4; i++) {
    lines.push(
      phase === "del"
        ? ["route", "del", bulk4(i), ...table(i)]
        : ["route", phase, bulk4(i), "via", via4, ...dev, ...table(i)]
    )
  }
  for (let i = 0; i < plan.routes6; i++) {
    lines.push(
      phase === "del"
        ? ["route", "del", bulk6(i), ...table(i)]
        : ["route", phase, bulk6(i), "via", via6, ...dev, ...table(i)]
    )
  }
  return lines.map((l) => l.join(" ")).join("\n") + "\n"
}

// ---------------------------------------------------------------------------------------------------------------
// Daemon logs

/** `2024-05-01T12:00:00.000Z kiwitun[123]: info: message k=v` (the foreground logger of src/Log.ts). */
const LOG_LINE = /^\S+ kiwitun\[\d+\]: ([a-z]+): /

export type LineVerdict = "ok" | "unexpected"

/**
 * Whether a line of a daemon's output is expected in a soak: log lines at info or debug are. Warnings, errors and
 * anything that is not a log line at all (a stack trace, a Node warning) are not. Hostile packets have no line of
 * their own: drops are logged at debug level only (behaviour.md), so a hostile burst must not produce a warning
 * either.
 */
export const classifyLine = (line: string): LineVerdict => {
  if (line.trim().length === 0) return "ok"
  const m = LOG_LINE.exec(line)
  return m !== null && (m[1] === "info" || m[1] === "debug" || m[1] === "trace") ? "ok" : "unexpected"
}

// ---------------------------------------------------------------------------------------------------------------
// Figures

export interface RssPoint {
  /** Seconds since the start of the run. */
  readonly t: number
  readonly rssKb: number
}

export interface RssFigures {
  /** The first sample at or after the warm-up. */
  readonly warmup: RssPoint | undefined
  /** The last sample. */
  readonly end: RssPoint | undefined
  /**
   * Medians of the samples in a window after the warm-up and in one before the end (each `windowSeconds` long),
   * kB: a single sample moves by tens of MB with the garbage collector's cycles, a median of several does not.
   */
  readonly warmupMedianKb: number
  readonly endMedianKb: number
  readonly windowSeconds: number
  /** endMedianKb - warmupMedianKb (NaN without samples after the warm-up). */
  readonly growthKb: number
  /**
   * The smallest sample of each window, kB, and its growth: what stays resident right after a collection. The
   * soak's RSS target applies to this growth: the heap of a busy daemon swings by tens of MB with its collections,
   * which moves a median by as much depending on where the cycles fall, while a leak raises the floor.
   */
  readonly warmupFloorKb: number
  readonly endFloorKb: number
  readonly floorGrowthKb: number
  readonly maxKb: number
  /** Least-squares slope of the samples from the warm-up on, kB per hour (NaN for fewer than two). */
  readonly slopeKbPerHour: number
}

const medianOf = (values: ReadonlyArray<number>): number => {
  if (values.length === 0) return Number.NaN
  const s = [...values].sort((x, y) => x - y)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/**
 * The length of the two windows: a fifth of the time after the warm-up, at least one minute and at most five (a
 * garbage-collection cycle of a busy daemon lasts about a minute: each window should hold a few troughs).
 */
export const defaultWindow = (spanSeconds: number): number => Math.min(300, Math.max(60, spanSeconds / 5))

/**
 * RSS figures of one daemon. The two windows are `window` seconds long (default `defaultWindow`), shortened to
 * half the time between the warm-up and the end so that they never overlap.
 */
export const rssFigures = (
  points: ReadonlyArray<RssPoint>,
  warmupSeconds: number,
  window?: number
): RssFigures => {
  const after = points.filter((p) => p.t >= warmupSeconds)
  const warmup = after[0]
  const end = after.at(-1)
  const maxKb = points.length === 0 ? Number.NaN : Math.max(...points.map((p) => p.rssKb))
  if (warmup === undefined || end === undefined) {
    return {
      warmup,
      end: points.at(-1),
      warmupMedianKb: Number.NaN,
      endMedianKb: Number.NaN,
      windowSeconds: 0,
      growthKb: Number.NaN,
      warmupFloorKb: Number.NaN,
      endFloorKb: Number.NaN,
      floorGrowthKb: Number.NaN,
      maxKb,
      slopeKbPerHour: Number.NaN
    }
  }
  const w = Math.min(window ?? defaultWindow(end.t - warmup.t), (end.t - warmup.t) / 2)
  // Half-open windows [warmup, warmup + w) and (end - w, end], closed when w is 0 (one sample each).
  const first = after.filter((p) => p.t === warmup.t || p.t < warmup.t + w).map((p) => p.rssKb)
  const last = after.filter((p) => p.t === end.t || p.t > end.t - w).map((p) => p.rssKb)
  const warmupMedianKb = medianOf(first)
  const endMedianKb = medianOf(last)
  const warmupFloorKb = Math.min(...first)
  const endFloorKb = Math.min(...last)
  return {
    warmup,
    end,
    warmupMedianKb,
    endMedianKb,
    windowSeconds: w,
    growthKb: endMedianKb - warmupMedianKb,
    warmupFloorKb,
    endFloorKb,
    floorGrowthKb: endFloorKb - warmupFloorKb,
    maxKb,
    slopeKbPerHour: slope(after) * 3600
  }
}

/** kB per second over the points (least squares), NaN for fewer than two distinct times. */
export const slope = (points: ReadonlyArray<RssPoint>): number => {
  const n = points.length
  if (n < 2) return Number.NaN
  const mt = points.reduce((s, p) => s + p.t, 0) / n
  const mr = points.reduce((s, p) => s + p.rssKb, 0) / n
  let num = 0
  let den = 0
  for (const p of points) {
    num += (p.t - mt) * (p.rssKb - mr)
    den += (p.t - mt) ** 2
  }
  return den === 0 ? Number.NaN : num / den
}

/** `after - before` for every key of either (a key missing on one side counts as 0); zero differences left out. */
export const delta = (
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>
): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const d = (after[key] ?? 0) - (before[key] ?? 0)
    if (d !== 0) out[key] = d
  }
  return out
}

/** Adds `more` into `into`, key by key. */
export const addInto = (into: Record<string, number>, more: Readonly<Record<string, number>>): void => {
  for (const [key, n] of Object.entries(more)) into[key] = (into[key] ?? 0) + n
}

export interface HostileCheck {
  readonly reason: string
  /** Hostile packets sent that must be dropped for this reason. */
  readonly sent: number
  /** What the daemon counted for it over the run. */
  readonly counted: number
}

/**
 * For each reason the hostile packets aim at: how many were sent and how many the daemon counted. Counted below
 * sent means packets lost on the way or misjudged; above means other traffic was dropped for the same reason.
 */
export const hostileChecks = (
  expected: Readonly<Record<string, number>>,
  counted: Readonly<Record<string, number>>
): ReadonlyArray<HostileCheck> =>
  Object.keys(expected).sort().map((reason) => ({ reason, sent: expected[reason]!, counted: counted[reason] ?? 0 }))
