/**
 * The ICMP rate limit (behaviour.md "ICMP the daemon sends": one token bucket for the whole daemon, default 100
 * errors per second with a burst of 100), so that a flood cannot turn the daemon into an amplifier. A dynamic-mode
 * daemon with `ip route add 203.0.113.0/24 dev TUN` (a route through the tunnel without a gateway) answers every
 * packet to that prefix with Destination Unreachable; the host floods it with UDP and counts, with a raw ICMP socket,
 * the errors that come back and when.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import type { FloodReport } from "../../scripts/lib/craft.js"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const IFNAME = "ktun0"
const TARGET4 = "203.0.113.7"
const TARGET6 = "2001:db8:ff::7"
const PORT = 9

/** One host, its daemon in dynamic mode, routes through the tunnel without a gateway for the two targets. */
const floodHost = (extra: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const ns = yield* Netns.namespace
    const daemon = yield* Netns.kiwitun(ns, [
      "-4",
      "-6",
      "-d",
      "-i",
      IFNAME,
      "--address",
      "198.51.100.1/30",
      "--address",
      "2001:db8:1::1/64",
      "--control-socket",
      Netns.controlSocketOf(ns),
      ...extra
    ])
    yield* Netns.ip(ns, "route", "add", "203.0.113.0/24", "dev", IFNAME)
    yield* Netns.ip(ns, "-6", "route", "add", "2001:db8:ff::/64", "dev", IFNAME)
    return { ns, daemon }
  })

/** Replies in each whole second after the first send. */
const perSecond = (replies: ReadonlyArray<number>): ReadonlyArray<number> => {
  const out: Array<number> = []
  for (const t of replies) {
    const s = Math.floor(t / 1000)
    while (out.length <= s) out.push(0)
    out[s]!++
  }
  return out
}

/** The most replies within any window of `ms` milliseconds. */
const maxInWindow = (replies: ReadonlyArray<number>, ms: number): number => {
  const sorted = [...replies].sort((x, y) => x - y)
  let best = 0
  let from = 0
  for (let to = 0; to < sorted.length; to++) {
    while (sorted[to]! - sorted[from]! >= ms) from++
    best = Math.max(best, to - from + 1)
  }
  return best
}

/** Span between the first and the last reply, in seconds (the time over which the bucket was refilling). */
const span = (replies: ReadonlyArray<number>): number =>
  replies.length < 2 ? 0 : (Math.max(...replies) - Math.min(...replies)) / 1000

/**
 * How late a reply may be seen after the daemon granted it: the flooding process reads its ICMP socket between
 * sends, on a 1 ms timer that a busy event loop delays.
 */
const JITTER_SECONDS = 0.1

/**
 * A bucket of `burst` refilled at `rate` per second can have granted at most burst + rate * span errors between
 * its first and its last grant; the span as seen by the receiver may be short by the jitter.
 */
const expectWithinBucket = (replies: ReadonlyArray<number>, rate: number, burst: number) => {
  const slack = Math.ceil(rate * JITTER_SECONDS) + 2
  const bound = burst + Math.ceil(rate * span(replies)) + slack
  expect(replies.length, `replies ${replies.length} within burst ${burst} + ${rate}/s`).toBeLessThanOrEqual(bound)
  expect(maxInWindow(replies, 1000), "replies in any one second").toBeLessThanOrEqual(burst + rate + slack)
}

const counterDelta = (
  before: Readonly<Record<string, number>>,
  after: Readonly<Record<string, number>>,
  name: string
) => (after[name] ?? 0) - (before[name] ?? 0)

const describeFlood = (report: FloodReport) => ({
  sent: report.sent,
  sendMs: report.lastSendMs,
  replies: report.replies.length,
  perSecond: perSecond(report.replies).join(","),
  maxPerSecond: maxInWindow(report.replies, 1000)
})

/**
 * The flood's 5,000 packets have no route, and so may a few of the kernel's own: a fresh device sends IPv6 router
 * solicitations and MLD reports for its first seconds (multicast, so never answered with an ICMP error; the ICMP
 * counters stay exact). Seen once in CI: 5,001.
 */
const expectNoRoute = (count: number, message?: string) => {
  expect(count, message).toBeGreaterThanOrEqual(5_000)
  expect(count, message).toBeLessThanOrEqual(5_010)
}

describeIntegration("ICMP rate limit", () => {
  it.scopedLive("answers a flood of 5,000 packets in a second with at most 100 + 100/s errors", () =>
    Effect.gen(function*() {
      const { daemon, ns } = yield* floodHost([])
      const before = (yield* Netns.requestCounters(daemon)).counters
      const flood = yield* Netns.icmpFlood(ns, {
        family: 4,
        destination: TARGET4,
        port: PORT,
        count: 5_000,
        durationMs: 1_000
      })
      const after = (yield* Netns.requestCounters(daemon)).counters
      yield* Effect.logInfo("ICMP flood, defaults").pipe(Effect.annotateLogs(describeFlood(flood)))

      expect(flood.sent).toBe(5_000)
      expect(flood.sendErrors).toBe(0)
      expect(flood.lastSendMs).toBeLessThan(2_000)
      // The burst is granted at once, then about 100 a second while the flood lasts.
      expect(flood.replies.length).toBeGreaterThanOrEqual(100 + Math.floor(50 * (flood.lastSendMs / 1000)))
      expectWithinBucket(flood.replies, 100, 100)

      expectNoRoute(counterDelta(before, after, "encap_no_route"), "every packet reached the daemon")
      expect(counterDelta(before, after, "icmp_sent"), "every error sent came back").toBe(flood.replies.length)
      expect(counterDelta(before, after, "icmp_rate_limited")).toBe(5_000 - flood.replies.length)
    }), 60_000)

  it.scopedLive("shares one bucket between IPv4 and IPv6 floods", () =>
    Effect.gen(function*() {
      const { daemon, ns } = yield* floodHost([])
      const before = (yield* Netns.requestCounters(daemon)).counters
      const [flood4, flood6] = yield* Effect.all([
        Netns.icmpFlood(ns, { family: 4, destination: TARGET4, port: PORT, count: 2_500, durationMs: 1_000 }),
        Netns.icmpFlood(ns, { family: 6, destination: TARGET6, port: PORT, count: 2_500, durationMs: 1_000 })
      ], { concurrency: 2 })
      const after = (yield* Netns.requestCounters(daemon)).counters
      yield* Effect.logInfo("ICMP flood, IPv4 and IPv6 at once").pipe(
        Effect.annotateLogs({
          v4: JSON.stringify(describeFlood(flood4)),
          v6: JSON.stringify(describeFlood(flood6)),
          v6StartedAfterMs: flood6.startedAt - flood4.startedAt
        })
      )

      expect(flood6.replies.length, "ICMPv6 errors are sent too").toBeGreaterThan(0)
      // On one time line: each report counts from its own first send.
      const all = [
        ...flood4.replies.map((t) => flood4.startedAt + t),
        ...flood6.replies.map((t) => flood6.startedAt + t)
      ]
      expectWithinBucket(all, 100, 100)
      expectNoRoute(counterDelta(before, after, "encap_no_route"))
      expect(counterDelta(before, after, "icmp_sent")).toBe(all.length)
      expect(counterDelta(before, after, "icmp_rate_limited")).toBe(5_000 - all.length)
    }), 60_000)

  it.scopedLive("keeps to --icmp-rate 10 --icmp-burst 5", () =>
    Effect.gen(function*() {
      const { daemon, ns } = yield* floodHost(["--icmp-rate", "10", "--icmp-burst", "5"])
      const before = (yield* Netns.requestCounters(daemon)).counters
      const flood = yield* Netns.icmpFlood(ns, {
        family: 4,
        destination: TARGET4,
        port: PORT,
        count: 5_000,
        durationMs: 2_000
      })
      const after = (yield* Netns.requestCounters(daemon)).counters
      yield* Effect.logInfo("ICMP flood, --icmp-rate 10 --icmp-burst 5").pipe(
        Effect.annotateLogs(describeFlood(flood))
      )

      expect(flood.sent).toBe(5_000)
      expect(flood.replies.length).toBeGreaterThanOrEqual(5 + Math.floor(5 * (flood.lastSendMs / 1000)))
      expectWithinBucket(flood.replies, 10, 5)
      expectNoRoute(counterDelta(before, after, "encap_no_route"))
      expect(counterDelta(before, after, "icmp_sent")).toBe(flood.replies.length)
      expect(counterDelta(before, after, "icmp_rate_limited")).toBe(5_000 - flood.replies.length)
    }), 60_000)
})
