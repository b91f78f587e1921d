/**
 * Two hosts (namespaces) joined by veth, the real daemon on each, traffic through the tunnel: ping over IPv4
 * (4in4) and IPv6 (6in4), 10 MB TCP transfers checked by SHA-256, the MTU boundary, and the counters.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const TEN_MB = 10 * 1024 * 1024

describeIntegration("tunnel between two hosts", () => {
  it.scopedLive("carries IPv4 (4in4) ping both ways and counts it", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const there = yield* Netns.ping(a.ns, b.inner4, { count: 3 })
      expect(there.received, there.output).toBe(3)
      const back = yield* Netns.ping(b.ns, a.inner4, { count: 3 })
      expect(back.received, back.output).toBe(3)

      // 6 echo requests out of A and 6 replies into A, at least (a fresh TUN also carries the kernel's own IPv6
      // router solicitations and MLD reports).
      const { counters, line } = yield* Netns.requestCounters(yield* Netns.daemonOf(a))
      expect(counters["encap_packets"], line).toBeGreaterThanOrEqual(6)
      expect(counters["decap_packets"], line).toBeGreaterThanOrEqual(6)
      expect(counters["encap_bytes"], line).toBeGreaterThanOrEqual(6 * 84 + 6 * 20)
    }), 60_000)

  it.scopedLive("carries IPv6 (6in4) ping both ways", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const there = yield* Netns.ping(a.ns, b.inner6, { count: 3 })
      expect(there.received, there.output).toBe(3)
      const back = yield* Netns.ping(b.ns, a.inner6, { count: 3 })
      expect(back.received, back.output).toBe(3)
    }), 60_000)

  it.scopedLive("moves 10 MB over TCP in each direction, intact, over IPv4 and IPv6", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
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
      expect(counters["encap_bytes"], line).toBeGreaterThan(2 * TEN_MB)
      expect(counters["decap_bytes"], line).toBeGreaterThan(2 * TEN_MB)
    }), 300_000)

  it.scopedLive("passes 1480-byte packets and refuses 1481 with the TUN MTU", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const link = yield* Netns.waitLinkUp(a.ns, a.ifname)
      expect(link.mtu).toBe(1480)

      // 1452 + 8 (ICMP) + 20 (IPv4) = 1480
      const fits = yield* Netns.ping(a.ns, b.inner4, { count: 2, size: 1452, dontFragment: true })
      expect(fits.received, fits.output).toBe(2)
      // One byte more is refused by the sending kernel itself, from the TUN MTU: a local sender sees EMSGSIZE
      // ("local error: message too long, mtu=1480"), a forwarded packet gets Frag Needed (mtu = 1480).
      const tooBig = yield* Netns.ping(a.ns, b.inner4, { count: 2, size: 1453, dontFragment: true })
      expect(tooBig.received, tooBig.output).toBe(0)
      expect(tooBig.output).toMatch(/mtu(?: ?=|:) ?1480\b/)

      // 1432 + 8 (ICMPv6) + 40 (IPv6) = 1480
      const fits6 = yield* Netns.ping(a.ns, b.inner6, { count: 2, size: 1432, dontFragment: true })
      expect(fits6.received, fits6.output).toBe(2)
      const tooBig6 = yield* Netns.ping(a.ns, b.inner6, { count: 2, size: 1433, dontFragment: true })
      expect(tooBig6.received, tooBig6.output).toBe(0)
      expect(tooBig6.output).toMatch(/mtu(?: ?=|:) ?1480\b/)
    }), 60_000)

  it.scopedLive("routes for a LAN behind A; a forwarded 1481-byte DF packet gets the kernel's Frag Needed (1480)", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      // C sits behind A on 203.0.113.0/24; B routes that network into its tunnel.
      const c = yield* Netns.namespace
      yield* Netns.veth({
        a: c,
        b: a.ns,
        nameA: "veth0",
        nameB: "lan0",
        addressA: "203.0.113.2/24",
        addressB: "203.0.113.1/24"
      })
      yield* Netns.ip(c, "route", "add", "default", "via", "203.0.113.1")
      yield* Netns.execOk(a.ns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
      yield* Netns.ip(b.ns, "route", "add", "203.0.113.0/24", "dev", b.ifname)

      const fits = yield* Netns.ping(c, b.inner4, { count: 2, size: 1452, dontFragment: true })
      expect(fits.received, fits.output).toBe(2)
      const tooBig = yield* Netns.ping(c, b.inner4, { count: 2, size: 1453, dontFragment: true })
      expect(tooBig.received, tooBig.output).toBe(0)
      expect(tooBig.output).toContain("Frag needed and DF set (mtu = 1480)")
    }), 60_000)

  it.scopedLive("drops tunnelled packets whose outer source is not the fixed remote", () =>
    Effect.gen(function*() {
      const { a } = yield* Netns.twoHosts()
      // C reaches A over a second underlay link and impersonates B's inner address.
      const c = yield* Netns.namespace
      yield* Netns.veth({
        a: c,
        b: a.ns,
        nameA: "veth0",
        nameB: "veth1",
        addressA: "203.0.113.2/24",
        addressB: "203.0.113.1/24"
      })
      yield* Netns.kiwitun(c, ["-4", "-d", "-r", "203.0.113.1", "-i", "ktun0", "--address", "198.51.100.2/30"])
      const spoofed = yield* Netns.ping(c, a.inner4, { count: 3, wait: 1 })
      expect(spoofed.received, spoofed.output).toBe(0)
      const { counters, line } = yield* Netns.requestCounters(yield* Netns.daemonOf(a))
      expect(counters["decap_remote_mismatch"], line).toBeGreaterThanOrEqual(3)
    }), 60_000)

  it.scopedLive("logs its counters when it exits", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const result = yield* Netns.ping(a.ns, b.inner4, { count: 4 })
      expect(result.received, result.output).toBe(4)
      const daemon = yield* Netns.daemonOf(b)
      yield* daemon.signal("SIGTERM")
      const exit = yield* daemon.exit
      expect(exit.code).toBe(0)
      const counters = yield* Netns.exitCounters(daemon)
      const output = (yield* daemon.lines).join("\n")
      // B decapsulated 4 requests and encapsulated 4 replies
      expect(counters["decap_packets"], output).toBeGreaterThanOrEqual(4)
      expect(counters["encap_packets"], output).toBeGreaterThanOrEqual(4)
      expect(counters["net_rx"], output).toBeGreaterThanOrEqual(4)
    }), 60_000)
})
