/**
 * Dynamic mode (no -r): the remote endpoint is the gateway of the route through the tunnel (behaviour.md,
 * Encapsulation step 4). A route through the tunnel without a gateway gives the daemon no remote at all: it must
 * answer with Destination Unreachable (IPv4 host unreachable, IPv6 no route).
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

describeIntegration("routes in dynamic mode", () => {
  it.scopedLive("answers a packet it has no remote for with Destination Unreachable", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const daemon = yield* Netns.kiwitun(ns, [
        "-4",
        "-6",
        "-d",
        "-i",
        "ktun0",
        "--address",
        "198.51.100.1/30",
        "--address",
        "2001:db8:1::1/64"
      ])
      yield* Netns.ip(ns, "route", "add", "203.0.113.0/24", "dev", "ktun0")
      yield* Netns.ip(ns, "-6", "route", "add", "2001:db8:99::/64", "dev", "ktun0")

      const v4 = yield* Netns.ping(ns, "203.0.113.5", { count: 2, wait: 1 })
      expect(v4.received, v4.output).toBe(0)
      expect(v4.output).toContain("Destination Host Unreachable")

      const v6 = yield* Netns.ping(ns, "2001:db8:99::1", { count: 2, wait: 1 })
      expect(v6.received, v6.output).toBe(0)
      expect(v6.output).toContain("Destination unreachable: No route")

      yield* daemon.signal("SIGTERM")
      expect((yield* daemon.exit).code).toBe(0)
      const counters = yield* Netns.exitCounters(daemon)
      const output = (yield* daemon.lines).join("\n")
      expect(counters["encap_no_route"], output).toBeGreaterThanOrEqual(4)
      expect(counters["icmp_sent"], output).toBeGreaterThanOrEqual(4)
      expect(counters["encap_packets"] ?? 0, output).toBe(0)
    }), 60_000)

  it.scopedLive("sends each packet to the gateway of its route (via A.B.C.D, ::ffff:A.B.C.D and ::A.B.C.D)", () =>
    Effect.gen(function*() {
      // A in dynamic mode; B keeps its fixed remote (A) and gets the extra destinations as addresses.
      const hosts = yield* Netns.twoHosts({ startDaemons: false })
      const { a, b } = hosts
      const dynamicArgs = a.args.filter((arg, i, all) => arg !== "-r" && all[i - 1] !== "-r")
      expect(dynamicArgs).not.toContain("192.0.2.2")
      yield* Netns.kiwitun(a.ns, dynamicArgs)
      yield* Netns.kiwitun(b.ns, b.args)
      yield* Netns.ip(b.ns, "address", "add", "203.0.113.2/32", "dev", b.ifname)
      yield* Netns.ip(b.ns, "address", "add", "2001:db8:2::2/128", "dev", b.ifname, "nodad")
      yield* Netns.ip(b.ns, "address", "add", "2001:db8:3::2/128", "dev", b.ifname, "nodad")
      yield* Netns.ip(a.ns, "route", "add", "203.0.113.0/24", "via", "192.0.2.2", "dev", a.ifname, "onlink")
      const route6 = (prefix: string, via: string) =>
        Netns.ip(a.ns, "-6", "route", "add", prefix, "via", via, "dev", a.ifname, "onlink")
      yield* route6("2001:db8:2::/64", "::ffff:192.0.2.2")
      yield* route6("2001:db8:3::/64", "::192.0.2.2")

      for (const target of ["203.0.113.2", "2001:db8:2::2", "2001:db8:3::2"]) {
        const result = yield* Netns.ping(a.ns, target, { count: 2 })
        expect(result.received, `${target}\n${result.output}`).toBe(2)
      }
      // The connected /30 has no gateway: in dynamic mode it is a "no route" like any other.
      const direct = yield* Netns.ping(a.ns, b.inner4, { count: 1, wait: 1 })
      expect(direct.received, direct.output).toBe(0)
      expect(direct.output).toContain("Destination Host Unreachable")
    }), 60_000)
})
