/**
 * UDP segmentation offload on the TUN device (Linux 6.2+): with offloads on, the daemon asks for TUN_F_USO4 |
 * TUN_F_USO6 too. Then B's daemon coalesces runs of received datagrams into UDP_L4 super-packets, one TUN write each,
 * which B's kernel segments again before its socket sees them; and A's kernel hands a UDP_SEGMENT send to A's daemon
 * as one super-packet, which the daemon segments before encapsulation. Every datagram must arrive intact, and B's
 * TUN device must have taken clearly fewer writes than datagrams (its RX packet count grows once per write).
 */
import * as Path from "node:path"
import { it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const dist = Path.join(Netns.repoRoot, "dist")
const sender = Path.join(Netns.repoRoot, "test", "integration", "fixtures", "udp-send.mjs")
const sinkScript = Path.join(Netns.repoRoot, "test", "integration", "fixtures", "udp-sink.mjs")
const SIZE = 64

const Stats = Schema.Struct({ packets: Schema.Number })
const LinkStats = Schema.parseJson(Schema.Array(Schema.Struct({ stats64: Schema.Struct({ rx: Stats, tx: Stats }) })))

/** The kernel's packet counters of the host's TUN device: RX counts TUN writes, TX counts what the daemon read. */
const tunStats = (host: Netns.TunnelHost) =>
  Effect.gen(function*() {
    const r = yield* Netns.execOk(host.ns, ["ip", "-s", "-j", "link", "show", "dev", host.ifname])
    const links = yield* Schema.decodeUnknown(LinkStats)(r.stdout).pipe(Effect.orDie)
    const link = links[0]
    if (link === undefined) return yield* Effect.dieMessage(`no link ${host.ifname}: ${r.stdout}`)
    return { rx: link.stats64.rx.packets, tx: link.stats64.tx.packets }
  })

const SinkReport = Schema.parseJson(Schema.Struct({
  received: Schema.Number,
  distinct: Schema.Number,
  duplicates: Schema.Number,
  bad: Schema.Number
}))
const SendReport = Schema.parseJson(Schema.Struct({ sent: Schema.Number, errors: Schema.Number }))
const lastLine = (text: string) => text.trim().split("\n").pop() ?? ""

interface Flood {
  readonly mode: "plain" | "gso"
  readonly host: string
  readonly count: number
  /** Datagrams per burst (plain) or per sendto (gso). */
  readonly burst: number
  readonly gapMs: number
  readonly tag: number
}

/**
 * Sends `flood` from A to a sink on B, port 7000 + tag, and returns what the sink reported with how much B's TUN RX
 * packet count and A's TUN TX packet count grew meanwhile.
 */
const flood = (a: Netns.TunnelHost, b: Netns.TunnelHost, f: Flood) =>
  Effect.scoped(Effect.gen(function*() {
    const port = String(7000 + f.tag)
    const sink = yield* Netns.spawn(b.ns, [
      process.execPath,
      sinkScript,
      dist,
      f.host,
      port,
      String(f.count),
      String(SIZE),
      String(f.tag)
    ])
    yield* sink.waitForLine(/^listening$/, { timeout: "10 seconds" })
    const beforeB = yield* tunStats(b)
    const beforeA = yield* tunStats(a)
    const sent = yield* Netns.execOk(a.ns, [
      process.execPath,
      sender,
      dist,
      f.mode,
      f.host,
      port,
      String(f.count),
      String(SIZE),
      String(f.burst),
      String(f.gapMs),
      String(f.tag)
    ], { timeout: "60 seconds" })
    yield* sink.exit.pipe(Effect.interruptible, Effect.timeout("70 seconds"), Effect.orDie)
    const report = yield* Schema.decodeUnknown(SinkReport)(lastLine(yield* sink.stdout)).pipe(Effect.orDie)
    const afterB = yield* tunStats(b)
    const afterA = yield* tunStats(a)
    return {
      sent: yield* Schema.decodeUnknown(SendReport)(lastLine(sent.stdout)).pipe(Effect.orDie),
      report,
      writesB: afterB.rx - beforeB.rx,
      readsA: afterA.tx - beforeA.tx
    }
  }))

describeIntegration("UDP segmentation offload", () => {
  it.scopedLive("64-byte UDP floods arrive intact, coalesced into UDP_L4 writes; UDP_SEGMENT sends are segmented", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const daemonA = yield* Netns.daemonOf(a)
      const daemonB = yield* Netns.daemonOf(b)
      const runs: ReadonlyArray<Flood> = [
        { mode: "plain", host: b.inner4, count: 20_000, burst: 40, gapMs: 2, tag: 1 },
        { mode: "plain", host: b.inner6, count: 5_000, burst: 40, gapMs: 2, tag: 2 },
        // 20 datagrams per sendto: one super-packet each for A's daemon to cut.
        { mode: "gso", host: b.inner4, count: 5_000, burst: 20, gapMs: 1, tag: 3 }
      ]
      for (const run of runs) {
        const before = (yield* Netns.requestCounters(daemonA)).counters
        const { readsA, report, sent, writesB } = yield* flood(a, b, run)
        const { counters, line } = yield* Netns.requestCounters(daemonA)
        const what = `${run.mode} to ${run.host}: ${JSON.stringify({ sent, report, writesB, readsA })}`
        expect(sent, what).toEqual({ sent: run.count, errors: 0 })
        // Every datagram that arrived is one that was sent, whole, and arrived once.
        expect(report.bad, what).toBe(0)
        expect(report.duplicates, what).toBe(0)
        expect(report.distinct, what).toBe(report.received)
        expect(report.received, what).toBeGreaterThanOrEqual(0.9 * run.count)
        // Coalescing happened: each UDP_L4 super-packet is one write, so B's TUN device counted far fewer packets
        // than datagrams arrived (one write per datagram without it).
        expect(writesB, what).toBeLessThan(report.received / 2)
        const tunRx = counters["tun_rx"]! - before["tun_rx"]!
        const encap = counters["encap_packets"]! - before["encap_packets"]!
        expect(counters["encap_bad_offload"] ?? 0, line).toBe(0)
        if (run.mode === "gso") {
          // A's kernel handed over super-packets (one TUN read each) that A's daemon cut into datagrams.
          expect(readsA, what).toBeLessThanOrEqual(run.count / run.burst + 50)
          expect(tunRx, line).toBeLessThan(encap / 4)
          expect(encap, line).toBeGreaterThanOrEqual(run.count)
        }
      }
      for (const daemon of [daemonA, daemonB]) {
        const lines = yield* daemon.lines
        expect(lines.some((l) => /offloads refused/.test(l)), lines.join("\n")).toBe(false)
      }
      const { counters, line } = yield* Netns.requestCounters(daemonB)
      expect(counters["decap_write_error"] ?? 0, line).toBe(0)
    }), 300_000)
})
