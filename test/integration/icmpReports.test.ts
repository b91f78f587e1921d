/**
 * ICMP errors about our own outer packets. With IP_RECVERR a raw socket queues each one on its error queue and also
 * keeps it as the socket's pending error (raw_err() in the kernel), which the next send returns instead of sending
 * the packet it was handed. A remote host without a tunnel endpoint answers every encapsulated packet with protocol
 * unreachable: no packet may be lost to that report, and none counted as a send error.
 */
import * as Path from "node:path"
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const PACKETS = 20_000

/** The offload tests' UDP sender (plain mode: a connected socket, bursts of 1,000 datagrams sent back to back). */
const sender = Path.join(Netns.repoRoot, "test", "integration", "fixtures", "udp-send.mjs")
const dist = Path.join(Netns.repoRoot, "dist")

describeIntegration("ICMP errors from the remote", () => {
  it.scopedLive("a remote answering protocol unreachable: every packet is still sent, no send error counted", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ startDaemons: false })
      // B answers every packet at once, not one per second per source
      yield* Netns.exec(b.ns, [
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.icmp_ratelimit=0",
        "net.ipv4.icmp_msgs_per_sec=10000000",
        "net.ipv4.icmp_msgs_burst=10000000"
      ])
      const daemon = yield* Netns.kiwitun(a.ns, [...a.args, "--control-socket", Netns.controlSocketOf(a.ns)])
      // B has no tunnel endpoint: nothing comes back but the ICMP errors
      yield* Netns.ip(b.ns, "addr", "add", `${b.inner4}/30`, "dev", "lo")
      // back to back, so that reports arrive while the daemon is sending, not only while it waits for packets
      const blast = yield* Netns.exec(
        a.ns,
        [process.execPath, sender, dist, "plain", b.inner4, "9", String(PACKETS), "32", "1000", "0", "1"],
        { timeout: "60 seconds" }
      )
      expect(blast.stdout.trim(), blast.stderr).toBe(JSON.stringify({ sent: PACKETS, errors: 0 }))

      yield* Effect.sleep("500 millis")
      const { counters, line } = yield* Netns.requestCounters(daemon)
      const read = counters["tun_rx"] ?? 0
      const sent = counters["encap_packets"] ?? 0
      // (the blast outruns the TUN device's queue: the kernel drops part of it before the daemon reads)
      expect(read, line).toBeGreaterThanOrEqual(1000)
      expect(counters["encap_send_error"] ?? 0, line).toBe(0)
      expect(sent, line).toBe(read)
      // and the reports did come back, for most of those packets (/proc/net/snmp: a header line, then the values)
      const snmp = yield* Netns.exec(b.ns, ["grep", "^Icmp:", "/proc/net/snmp"])
      const [names, values] = snmp.stdout.trim().split("\n").map((l) => l.trim().split(/\s+/))
      const outUnreach = Number(values?.[names?.indexOf("OutDestUnreachs") ?? -1])
      expect(outUnreach, snmp.stdout).toBeGreaterThanOrEqual(sent / 2)
    }), 60_000)
})
