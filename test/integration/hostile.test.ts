/**
 * Hostile traffic while real traffic flows (behaviour.md "Decapsulation", "Encapsulation": every malformed packet is
 * a counted drop, never a crash). B's namespace fires over 100,000 crafted packets at A's raw sockets through an
 * AF_PACKET socket on its veth (so B's kernel fixes nothing), while 10 MB TCP transfers run from B to A through
 * the tunnel one after another; at the same time A writes malformed packets straight into its own TUN device
 * (AF_PACKET on the TUN: the kernel hands them to the daemon as written) and sends what its IP stack allows through
 * a raw socket. Afterwards every transfer must be intact, both daemons up, and A's counters must match what was
 * sent, reason by reason (a reason nobody should have hit must still be zero). What A's kernel stops before any raw
 * socket sees it (bad outer checksums, headers and lengths; fragments, which it reassembles or holds) never reaches
 * the daemon: `decap_outer_bad_checksum` and `decap_fragment` stay at zero, and A's own /proc/net/snmp and
 * /proc/net/netstat count those packets instead.
 *
 * Not sent, because no kernel path produces them: an IPv4 packet with TTL 1 from a forwarded host (the kernel
 * answers Time Exceeded and never hands it to the TUN device), and malformed packets through the host's IP stack
 * (it refuses a raw header with IHL < 5 with EINVAL and fills in the checksum and total length of any other).
 */
import { it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { expect } from "vitest"
import type { SendReport } from "../../scripts/lib/craft.js"
import type { HostileItem } from "../../scripts/lib/Hostile.js"
import * as Hostile from "../../scripts/lib/Hostile.js"
import * as Netns from "../../scripts/lib/Netns.js"
import { dropName } from "../../src/domain/Drops.js"
import { describeIntegration } from "./support.js"

const TEN_MB = 10 * 1024 * 1024
const PORT = 9000
const SPOOF = "192.0.2.3"
/**
 * A's TUN device MTU during the test: 20 above the daemon's tunnel MTU (1480), so a DF packet of 1500 bytes fits
 * the device but not the path, and reaches the daemon as the oversize packet it must refuse.
 */
const TUN_MTU = 1500

/** Rounds of the decapsulation catalogue: 34 kinds, 3,100 of each (the lone fragment excepted), at 15,000 a second. */
const DECAP_ROUNDS = 3_100
const DECAP_RATE = 15_000
const TUN_ROUNDS = 400
const MAX_TRANSFERS = 20
const STACK_ROUNDS = 400

const sum = (values: Iterable<number>): number => {
  let total = 0
  for (const v of values) total += v
  return total
}

/** `after - before` for every counter that moved. */
const delta = (before: Readonly<Record<string, number>>, after: Readonly<Record<string, number>>) => {
  const out: Record<string, number> = {}
  for (const [name, value] of Object.entries(after)) {
    const d = value - (before[name] ?? 0)
    if (d !== 0) out[name] = d
  }
  return out
}

const DROP_NAMES: ReadonlySet<string> = new Set(dropName)

const dropsOf = (counters: Readonly<Record<string, number>>) =>
  Object.fromEntries(Object.entries(counters).filter(([name]) => DROP_NAMES.has(name)))

const merge = (...maps: ReadonlyArray<Readonly<Record<string, number>>>) => {
  const out: Record<string, number> = {}
  for (const m of maps) for (const [k, v] of Object.entries(m)) out[k] = (out[k] ?? 0) + v
  return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== 0))
}

/** Every item sent all its rounds, and only the ones the sending kernel must refuse were refused. */
const expectSendsAsPlanned = (items: ReadonlyArray<HostileItem>, report: SendReport, rounds: number) => {
  for (const item of items) {
    const got = report.items.find((r) => r.name === item.name)
    const planned = Math.min(item.rounds ?? rounds, rounds) * item.frames.length
    if (item.refused !== undefined) {
      expect(got, item.name).toEqual({ name: item.name, sent: 0, errors: { [String(item.refused)]: planned } })
    } else {
      expect(got, item.name).toEqual({ name: item.name, sent: planned, errors: {} })
    }
  }
}

describeIntegration("hostile traffic", () => {
  // With TUN offloads (coalesced writes mix delivered packets with dropped ones in every batch) and without.
  for (const offload of [true, false]) {
    const extraArgs = offload ? [] : ["--no-offload"]
    it.scopedLive(`keeps 10 MB transfers intact under 100,000 malformed packets and counts each by reason${
      offload ? "" : " (--no-offload)"
    }`, () =>
      Effect.gen(function*() {
        const { a, b } = yield* Netns.twoHosts({ extraArgs })
        const daemonA = yield* Netns.daemonOf(a)
        const daemonB = yield* Netns.daemonOf(b)
        const socketA = Netns.controlSocketOf(a.ns)
        yield* Netns.ip(b.ns, "address", "add", `${SPOOF}/24`, "dev", "veth0")
        yield* Netns.ip(a.ns, "link", "set", a.ifname, "mtu", String(TUN_MTU))
        const macA = (yield* Netns.execOk(a.ns, ["cat", "/sys/class/net/veth0/address"])).stdout.trim()
        const listener = yield* Netns.udpCounter(a.ns, a.inner4, PORT)

        const decapItems = Hostile.decapCatalogue({
          local: a.underlay,
          remote: b.underlay,
          spoof: SPOOF,
          innerSrc4: b.inner4,
          innerDst4: a.inner4,
          innerSrc6: b.inner6,
          innerDst6: a.inner6,
          port: PORT
        })
        const encapTarget = {
          innerSrc4: a.inner4,
          innerDst4: b.inner4,
          innerSrc6: a.inner6,
          innerDst6: b.inner6,
          remote: b.underlay
        }
        const tunItems = Hostile.tunCatalogue(encapTarget)
        const stackItems = Hostile.stackCatalogue(encapTarget, TUN_MTU)

        const countersBefore = yield* Netns.statusCounters(a.ns, socketA)
        const kernelBefore = yield* Netns.kernelCounters(a.ns)

        const began = Date.now()
        const decapCrafter = yield* Netns.startCraft(b.ns, {
          via: { kind: "packet", ifname: "veth0", dstMac: macA },
          rounds: DECAP_ROUNDS,
          rate: DECAP_RATE,
          items: Hostile.sendItems(decapItems)
        })
        const tunCrafter = yield* Netns.startCraft(a.ns, {
          via: { kind: "packet", ifname: a.ifname, dstMac: "" },
          rounds: TUN_ROUNDS,
          rate: 1_000,
          items: Hostile.sendItems(tunItems)
        })
        const stackCrafter = yield* Netns.startCraft(a.ns, {
          via: { kind: "raw", to: b.inner4, ignorePathMtu: true },
          rounds: STACK_ROUNDS,
          rate: 400,
          items: Hostile.sendItems(stackItems)
        })

        // 10 MB transfers one after the other for as long as the crafter sends (at least one, at most twenty).
        const transfers: Array<Netns.TcpTransferResult> = []
        do {
          transfers.push(yield* Netns.tcpTransfer({ from: b.ns, to: a.ns, host: a.inner4, bytes: TEN_MB }))
        } while (transfers.length < MAX_TRANSFERS && Option.isNone(yield* decapCrafter.exited))
        const transfersEnded = Date.now() - began
        const decapReport = yield* Netns.craftReport(decapCrafter)
        const tunReport = yield* Netns.craftReport(tunCrafter)
        const stackReport = yield* Netns.craftReport(stackCrafter)
        yield* Effect.sleep("1 second") // let the daemon drain its socket queues

        const decapExpected = Hostile.expectationOf(decapItems, decapReport)
        const tunExpected = Hostile.expectationOf(tunItems, tunReport)
        const stackExpected = Hostile.expectationOf(stackItems, stackReport)
        const rawSockets = yield* Netns.rawSockets(a.ns)
        const moved = delta(countersBefore, yield* Netns.statusCounters(a.ns, socketA))
        const kernelMoved = delta(kernelBefore, yield* Netns.kernelCounters(a.ns))
        const counts = yield* listener.stop
        const seconds = (Date.now() - began) / 1000
        const icmpSent = moved["icmp_sent"] ?? 0
        yield* Effect.logInfo("hostile run").pipe(Effect.annotateLogs({
          offload,
          decapPackets: decapExpected.frames,
          decapMs: decapReport.durationMs,
          tunPackets: tunExpected.frames,
          stackPackets: stackExpected.frames,
          transfers: transfers.length,
          transferMs: transfers.map((t) => t.durationMs).join(","),
          transfersEnded,
          drops: JSON.stringify(dropsOf(moved)),
          kernel: JSON.stringify(kernelMoved),
          delivered: JSON.stringify(counts),
          deliveredTotal: sum(Object.values(counts)),
          icmpSent,
          rawSocketDrops: sum(rawSockets.map((r) => r.drops))
        }))

        for (const transfer of transfers) {
          expect(transfer.sent.bytes).toBe(TEN_MB)
          expect(transfer.received, "content intact (SHA-256)").toEqual(transfer.sent)
        }
        expect(Option.isNone(yield* daemonA.exited), "A still running").toBe(true)
        expect(Option.isNone(yield* daemonB.exited), "B still running").toBe(true)

        expectSendsAsPlanned(decapItems, decapReport, DECAP_ROUNDS)
        expectSendsAsPlanned(tunItems, tunReport, TUN_ROUNDS)
        expectSendsAsPlanned(stackItems, stackReport, STACK_ROUNDS)
        expect(decapExpected.frames, "crafted packets at A's raw sockets").toBeGreaterThanOrEqual(100_000)
        // Nothing was lost before the daemon could count it.
        for (const raw of rawSockets) expect(raw.drops, `raw socket ${raw.protocol} drops`).toBe(0)

        // The only ICMP errors in this run answer the oversize packets: one bucket, 100 per second, burst 100.
        const tooBig = stackExpected.drops["encap_too_big"] ?? 0
        expect(icmpSent).toBeGreaterThanOrEqual(100)
        expect(icmpSent).toBeLessThanOrEqual(100 + Math.ceil(100 * seconds))
        const expectedDrops = merge(decapExpected.drops, tunExpected.drops, stackExpected.drops, {
          icmp_rate_limited: tooBig - icmpSent
        })
        expect(dropsOf(moved), "drop counters, reason by reason").toEqual(expectedDrops)
        for (const [name, n] of Object.entries(decapExpected.kernel)) expect(kernelMoved[name] ?? 0, name).toBe(n)
        expect(counts, "datagrams delivered through the tunnel, by tag").toEqual(decapExpected.delivered)
      }), 120_000)
  }
})
