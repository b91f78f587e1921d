/**
 * Underlay MTU 1400 on both veth ends, TUN MTU still 1480: packets between 1381 and 1480 bytes fit the TUN but not
 * the path. The daemon must answer them itself (behaviour.md, Encapsulation step 7) with Fragmentation Needed /
 * Packet Too Big carrying 1380, so that the senders' kernels learn the path MTU and TCP still gets through.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const TEN_MB = 10 * 1024 * 1024

describeIntegration("path MTU below the tunnel MTU", () => {
  it.scopedLive("answers a too-big DF IPv4 packet with Fragmentation Needed (mtu 1380)", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ underlayMtu: 1400 })
      expect((yield* Netns.waitLinkUp(a.ns, "veth0")).mtu).toBe(1400)

      // 1424 + 8 + 20 = 1452 bytes: under the TUN MTU, 1472 with the outer header, over the veth MTU
      const tooBig = yield* Netns.ping(a.ns, b.inner4, { count: 2, size: 1424, dontFragment: true })
      expect(tooBig.received, tooBig.output).toBe(0)
      // Printed for an ICMP error that arrived, i.e. the daemon's; a kernel-local refusal reads differently.
      expect(tooBig.output).toContain("Frag needed and DF set (mtu = 1380)")

      // 1352 + 28 = 1380 bytes plus 20 outer = 1400: exactly fits
      const fits = yield* Netns.ping(a.ns, b.inner4, { count: 2, size: 1352, dontFragment: true })
      expect(fits.received, fits.output).toBe(2)

      const { counters, line } = yield* Netns.requestCounters(yield* Netns.daemonOf(a))
      expect(counters["encap_too_big"], line).toBeGreaterThanOrEqual(1)
      expect(counters["icmp_sent"], line).toBeGreaterThanOrEqual(1)
    }), 60_000)

  it.scopedLive("answers a too-big IPv6 packet with Packet Too Big (mtu 1380)", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ underlayMtu: 1400 })
      // 1400 + 8 + 40 = 1448 bytes
      const tooBig = yield* Netns.ping(a.ns, b.inner6, { count: 2, size: 1400, dontFragment: true })
      expect(tooBig.received, tooBig.output).toBe(0)
      expect(tooBig.output).toMatch(/Packet too big: mtu=1380\b/)

      // 1332 + 8 + 40 = 1380
      const fits = yield* Netns.ping(a.ns, b.inner6, { count: 2, size: 1332, dontFragment: true })
      expect(fits.received, fits.output).toBe(2)
    }), 60_000)

  it.scopedLive("still moves 10 MB over TCP each way, intact, once the senders learn the path MTU", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ underlayMtu: 1400 })
      const runs = [
        { from: a.ns, to: b.ns, host: b.inner4 },
        { from: b.ns, to: a.ns, host: a.inner4 },
        { from: a.ns, to: b.ns, host: b.inner6 },
        { from: b.ns, to: a.ns, host: a.inner6 }
      ]
      for (const run of runs) {
        const result = yield* Netns.tcpTransfer({ ...run, bytes: TEN_MB, timeout: "60 seconds" })
        expect(result.sent.bytes, `to ${run.host}`).toBe(TEN_MB)
        expect(result.received, `to ${run.host}`).toEqual(result.sent)
      }
      const { counters, line } = yield* Netns.requestCounters(yield* Netns.daemonOf(a))
      expect(counters["encap_too_big"], line).toBeGreaterThanOrEqual(1)
    }), 300_000)
})
