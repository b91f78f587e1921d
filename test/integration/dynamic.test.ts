/**
 * Dynamic mode with a hub and two peers (behaviour.md "Routes (dynamic mode)", Encapsulation step 4): the hub H runs
 * without -r and sends each packet to the gateway of the longest-prefix route through its tunnel, mirrored live from
 * the kernel; the peers P1 and P2 each have H as their fixed remote. A peer does not forward, so a reply from an
 * address only one peer holds proves the request reached that peer; where both hold the address, the peers' own
 * counters show which one got it.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

/**
 * Tunnel names unique to this process and host: the daemon keeps its control socket at /run/kiwitun/<ifname>.sock,
 * a path every namespace shares, so of two same-named daemons (here, or in a run next to this one) the second finds
 * it taken and the first gets its liveness probe.
 */
const tunnelName = (host: "h" | "p1" | "p2") => `kt${process.pid}${host}`
const HUB_IF = tunnelName("h")

/** Underlay addresses: H-P1 on 192.0.2.0/26, H-P2 on 192.0.2.64/26. */
const P1 = "192.0.2.2"
const P2 = "192.0.2.66"

/** Held by both peers: which one answers depends on the hub's route alone. */
const SHARED = "203.0.113.10"
/** Held by P2 alone, in the upper half of 203.0.113.0/24. */
const P2_ONLY = "203.0.113.140"
/** Held by P1 alone, outside every route of the main table (the AMPRNet-style policy-routed range). */
const P1_POLICY = "198.51.100.70"
/** IPv6 destinations: P2 behind an IPv4-mapped gateway, P1 behind an IPv4-compatible one. */
const P2_V6 = "2001:db8:20::2"
const P1_V6 = "2001:db8:30::1"

const innerArgs = (ifname: string, n: number) =>
  ["-4", "-6", "-d", "-i", ifname, "--address", `198.51.100.${n}/29`, "--address", `2001:db8:1::${n}/64`]

/**
 * H joined to P1 (veth1, 192.0.2.1 - 192.0.2.2) and to P2 (veth2, 192.0.2.65 - 192.0.2.66); daemons on all three,
 * H in dynamic mode with `hubExtra` appended. Inner 198.51.100.0/29 and 2001:db8:1::/64: H .1, P1 .2,
 * P2 .3; the peers' extra addresses are the constants above.
 */
const hubAndPeers = (hubExtra: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const h = yield* Netns.namespace
    const p1 = yield* Netns.namespace
    const p2 = yield* Netns.namespace
    yield* Netns.veth({ a: h, b: p1, nameA: "veth1", addressA: "192.0.2.1/26", addressB: `${P1}/26` })
    yield* Netns.veth({ a: h, b: p2, nameA: "veth2", addressA: "192.0.2.65/26", addressB: `${P2}/26` })
    const [hub, peer1, peer2] = yield* Effect.all([
      Netns.kiwitun(h, [...innerArgs(HUB_IF, 1), ...hubExtra]),
      Netns.kiwitun(p1, [...innerArgs(tunnelName("p1"), 2), "-r", "192.0.2.1"]),
      Netns.kiwitun(p2, [...innerArgs(tunnelName("p2"), 3), "-r", "192.0.2.65"])
    ], { concurrency: 3 })
    const addAddress = (ns: Netns.Namespace, ifname: string, address: string) =>
      address.includes(":")
        ? Netns.ip(ns, "-6", "address", "add", `${address}/128`, "dev", ifname, "nodad")
        : Netns.ip(ns, "address", "add", `${address}/32`, "dev", ifname)
    for (const address of [SHARED, P1_POLICY, P1_V6]) yield* addAddress(p1, tunnelName("p1"), address)
    for (const address of [SHARED, P2_ONLY, P2_V6]) yield* addAddress(p2, tunnelName("p2"), address)
    /** `ip route <verb> <prefix> via <gateway> dev <hub tunnel> onlink [more]` on H. */
    const route = (verb: "add" | "replace", prefix: string, gateway: string, ...more: ReadonlyArray<string>) =>
      Netns.ip(h, ...(prefix.includes(":") ? ["-6"] : []), "route", verb, prefix, "via", gateway, "dev", HUB_IF,
        "onlink", ...more)
    return { h, p1, p2, hub, peer1, peer2, route }
  })

/** Encapsulated packets each peer has received from the network so far, by its own count. */
const peerRx = (net: { readonly peer1: Netns.Process; readonly peer2: Netns.Process }) =>
  Effect.all({
    p1: Effect.map(Netns.requestCounters(net.peer1), ({ counters }) => counters["net_rx"] ?? 0),
    p2: Effect.map(Netns.requestCounters(net.peer2), ({ counters }) => counters["net_rx"] ?? 0)
  })

const PING = { count: 2, wait: 1 } as const

describeIntegration("dynamic mode with a hub and two peers", () => {
  it.scopedLive("sends each prefix to its gateway and follows ip route replace and ip route del", () =>
    Effect.gen(function*() {
      const net = yield* hubAndPeers()
      // The gateway-less /24 is what remains once a /25 goes: the kernel still hands the packet to the tunnel,
      // and the daemon must then answer it itself.
      yield* Netns.ip(net.h, "route", "add", "203.0.113.0/24", "dev", HUB_IF)
      yield* net.route("add", "203.0.113.0/25", P1)
      yield* net.route("add", "203.0.113.128/25", P2)

      const start = yield* peerRx(net)
      const lower = yield* Netns.ping(net.h, SHARED, PING)
      expect(lower.received, lower.output).toBe(2)
      const afterLower = yield* peerRx(net)
      expect(afterLower.p1 - start.p1, "the lower half goes to P1").toBeGreaterThanOrEqual(2)
      expect(afterLower.p2 - start.p2, "and not to P2").toBe(0)

      const upper = yield* Netns.ping(net.h, P2_ONLY, PING)
      expect(upper.received, upper.output).toBe(2)
      const afterUpper = yield* peerRx(net)
      expect(afterUpper.p2 - afterLower.p2, "the upper half goes to P2").toBeGreaterThanOrEqual(2)
      expect(afterUpper.p1 - afterLower.p1).toBe(0)

      yield* net.route("replace", "203.0.113.0/25", P2)
      const moved = yield* Netns.ping(net.h, SHARED, PING)
      expect(moved.received, moved.output).toBe(2)
      const afterMove = yield* peerRx(net)
      expect(afterMove.p2 - afterUpper.p2, "after the replace the lower half goes to P2").toBeGreaterThanOrEqual(2)
      expect(afterMove.p1 - afterUpper.p1, "and no longer to P1").toBe(0)

      yield* Netns.ip(net.h, "route", "del", "203.0.113.0/25")
      const gone = yield* Netns.ping(net.h, SHARED, PING)
      expect(gone.received, gone.output).toBe(0)
      expect(gone.output).toContain("Destination Host Unreachable")
      const afterDel = yield* peerRx(net)
      expect(afterDel, "nothing reaches either peer").toEqual(afterMove)
      // The upper half is untouched by all this.
      const stillUpper = yield* Netns.ping(net.h, P2_ONLY, PING)
      expect(stillUpper.received, stillUpper.output).toBe(2)
    }), 60_000)

  it.scopedLive("honours a default route through the tunnel in a policy-routed table (AMPRNet style)", () =>
    Effect.gen(function*() {
      const net = yield* hubAndPeers()
      // The host's own default route leaves by the underlay towards P2: it must never count as a tunnel route.
      yield* Netns.ip(net.h, "route", "add", "default", "via", P2, "dev", "veth2")
      const unrouted = yield* Netns.ping(net.h, P1_POLICY, { ...PING, count: 1 })
      expect(unrouted.received, unrouted.output).toBe(0)

      yield* net.route("add", "default", P1, "table", "44")
      yield* Netns.ip(net.h, "rule", "add", "to", "198.51.100.64/26", "table", "44")
      const before = yield* peerRx(net)
      const routed = yield* Netns.ping(net.h, P1_POLICY, PING)
      expect(routed.received, routed.output).toBe(2)
      const after = yield* peerRx(net)
      expect(after.p1 - before.p1).toBeGreaterThanOrEqual(2)
      expect(after.p2 - before.p2).toBe(0)
    }), 60_000)

  it.scopedLive("with --table 44 uses that table's routes alone", () =>
    Effect.gen(function*() {
      const net = yield* hubAndPeers(["--table", "44"])
      // The kernel picks the main table's /25 to reach the tunnel; the daemon must still choose by table 44.
      yield* net.route("add", "203.0.113.0/25", P1)
      yield* net.route("add", "203.0.113.0/24", P2, "table", "44")

      const before = yield* peerRx(net)
      const viaTable = yield* Netns.ping(net.h, SHARED, PING)
      expect(viaTable.received, viaTable.output).toBe(2)
      const after = yield* peerRx(net)
      expect(after.p2 - before.p2, "table 44 sends it to P2").toBeGreaterThanOrEqual(2)
      expect(after.p1 - before.p1, "the main table's route to P1 is ignored").toBe(0)

      yield* Netns.ip(net.h, "route", "del", "203.0.113.0/24", "table", "44")
      const none = yield* Netns.ping(net.h, SHARED, PING)
      expect(none.received, none.output).toBe(0)
      expect(none.output).toContain("Destination Host Unreachable")
      expect(yield* peerRx(net)).toEqual(after)
    }), 60_000)

  it.scopedLive("routes 6in4 by gateways via ::ffff:A.B.C.D and ::A.B.C.D to different peers", () =>
    Effect.gen(function*() {
      const net = yield* hubAndPeers()
      yield* net.route("add", "2001:db8:20::/64", `::ffff:${P2}`)
      yield* net.route("add", "2001:db8:30::/64", `::${P1}`)

      const before = yield* peerRx(net)
      const mapped = yield* Netns.ping(net.h, P2_V6, PING)
      expect(mapped.received, mapped.output).toBe(2)
      const afterMapped = yield* peerRx(net)
      expect(afterMapped.p2 - before.p2).toBeGreaterThanOrEqual(2)
      expect(afterMapped.p1 - before.p1).toBe(0)

      const compatible = yield* Netns.ping(net.h, P1_V6, PING)
      expect(compatible.received, compatible.output).toBe(2)
      const afterCompatible = yield* peerRx(net)
      expect(afterCompatible.p1 - afterMapped.p1).toBeGreaterThanOrEqual(2)
      expect(afterCompatible.p2 - afterMapped.p2).toBe(0)

      // Moving the mapped prefix to P1, which does not hold the address: P1 now receives the requests.
      yield* net.route("replace", "2001:db8:20::/64", `::ffff:${P1}`)
      const movedAway = yield* Netns.ping(net.h, P2_V6, { ...PING, count: 1 })
      expect(movedAway.received, movedAway.output).toBe(0)
      const afterMove = yield* peerRx(net)
      expect(afterMove.p1 - afterCompatible.p1).toBeGreaterThanOrEqual(1)
      expect(afterMove.p2 - afterCompatible.p2).toBe(0)
    }), 60_000)
})
