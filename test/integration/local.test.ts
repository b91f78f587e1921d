/**
 * `-l`: a daemon with a fixed local address takes encapsulated packets addressed to it only. A raw socket gets
 * protocol 4 and 41 packets for every address of the host, so packets to another local address reach the daemon
 * and must be dropped and counted (decap_local_mismatch), like the kernel's tunnel matching on its local endpoint.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

describeIntegration("local address (-l)", () => {
  it.scopedLive("packets to another address of the host are dropped as decap_local_mismatch; to -l they pass", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ startDaemons: false })
      // A second address on A's underlay: B's daemon is pointed at it first.
      yield* Netns.ip(a.ns, "addr", "add", "192.0.2.11/24", "dev", "veth0")
      const aArgs = [...a.args, "-l", "192.0.2.1", "--control-socket", Netns.controlSocketOf(a.ns)]
      const daemonA = yield* Netns.kiwitun(a.ns, aArgs)
      const wrongB = b.args.map((w) => (w === "192.0.2.1" ? "192.0.2.11" : w))
      const daemonB = yield* Netns.kiwitun(b.ns, [...wrongB, "--control-socket", Netns.controlSocketOf(b.ns)])

      const lost = yield* Netns.ping(b.ns, a.inner4, { count: 3, interval: 0.2, wait: 1 })
      expect(lost.received, lost.output).toBe(0)
      const { counters, line } = yield* Netns.requestCounters(daemonA)
      // the three pings, and whatever IPv6 router solicitations B's fresh device sent over 6in4
      const mismatched = counters["decap_local_mismatch"] ?? 0
      expect(mismatched, line).toBeGreaterThanOrEqual(3)
      expect(mismatched, line).toBeLessThanOrEqual(8)
      expect(counters["decap_packets"] ?? 0, line).toBe(0)

      // B now talks to A's -l address: the same pings pass
      yield* daemonB.signal("SIGTERM")
      yield* daemonB.exit.pipe(Effect.timeout("5 seconds"))
      yield* Netns.kiwitun(b.ns, [...b.args, "--control-socket", Netns.controlSocketOf(b.ns)])
      const passed = yield* Netns.ping(b.ns, a.inner4, { count: 3, interval: 0.2, wait: 1 })
      expect(passed.received, passed.output).toBe(3)
      const after = yield* Netns.requestCounters(daemonA)
      expect(after.counters["decap_local_mismatch"], after.line).toBe(mismatched)
      expect(after.counters["decap_packets"], after.line).toBeGreaterThanOrEqual(3)
    }), 60_000)
})
