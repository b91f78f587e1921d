/**
 * The receiving host's own GRO. A network driver's GRO (on by default on real NICs) coalesces consecutive TCP
 * segments carried in IPIP or 6in4 before the raw socket sees them, whether or not the kernel's tunnel modules are
 * loaded: the daemon receives one packet of up to 64 KB whose TCP checksum field holds only the pseudo-header sum.
 * Here the receiving end of the veth gets GRO with threaded NAPI (so that bursts collect in its queue), and the
 * sending end TSO/GSO off (veth skips GRO for packets from a device that could have segmented them). Written into the
 * TUN device as they are, those packets fail the kernel's checksum check and TCP through the tunnel stalls.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { ci, describeIntegration } from "./support.js"

/** ethtool turns GRO on; .ci/run installs it, so under CI=true a missing `ethtool` fails instead. */
const haveEthtool = Netns.onPath("ethtool")
const BYTES = 20 * 1024 * 1024
const TUNNEL_MTU = 1480

/** TcpInCsumErrors of the namespace's TCP stack (nstat from iproute2; absolute, the namespace being new). */
const tcpChecksumErrors = (ns: Netns.Namespace) =>
  Effect.map(Netns.execOk(ns, ["nstat", "-az", "TcpInCsumErrors"]), (r) => {
    const match = /^TcpInCsumErrors\s+(\d+)/m.exec(r.stdout)
    return match === null ? Number.NaN : Number(match[1])
  })

describeIntegration("GRO on the receiving host", () => {
  for (const offload of [true, false]) {
    it.scopedLive.skipIf(!haveEthtool && !ci)(
      `offload ${offload ? "on" : "off"}: TCP over IPv4 and IPv6 through coalesced outer packets, intact`,
      () =>
        Effect.gen(function*() {
          expect(haveEthtool, "ethtool on PATH (.ci/run installs it)").toBe(true)
          const { a, b, veth } = yield* Netns.twoHosts(offload ? {} : { extraArgs: ["--no-offload"] })
          yield* Netns.execOk(b.ns, ["ethtool", "-K", veth.nameB, "gro", "on"])
          yield* Netns.execOk(b.ns, ["sh", "-c", `echo 1 > /sys/class/net/${veth.nameB}/threaded`])
          yield* Netns.execOk(a.ns, ["ethtool", "-K", veth.nameA, "tso", "off", "gso", "off"])
          const daemonB = yield* Netns.daemonOf(b)

          for (const host of [b.inner4, b.inner6]) {
            const result = yield* Netns.tcpTransfer({ from: a.ns, to: b.ns, host, bytes: BYTES, timeout: "60 seconds" })
            expect(result.received, `to ${host}`).toEqual(result.sent)
          }

          const { counters, line } = yield* Netns.requestCounters(daemonB)
          // The kernel did coalesce: on average the inner packets B received were longer than the tunnel's MTU.
          expect(counters["decap_bytes"]! / counters["decap_packets"]!, line).toBeGreaterThan(TUNNEL_MTU)
          expect(yield* tcpChecksumErrors(b.ns), "TCP checksum errors in B's namespace").toBe(0)
        }),
      300_000
    )
  }
})
