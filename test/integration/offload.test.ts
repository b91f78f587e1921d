/**
 * TUN offloads: on by default (the kernel hands over TCP super-packets, segmented in the daemon, and takes coalesced
 * ones back), off with --no-offload. Traffic must be intact either way.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration, pingAndTransferBothWays } from "./support.js"

const TEN_MB = 10 * 1024 * 1024

describeIntegration("TUN offloads", () => {
  for (const offload of [true, false]) {
    it.scopedLive(`offload ${offload ? "on" : "off"}: ping and 10 MB of TCP each way over IPv4 and IPv6, intact`, () =>
      Effect.gen(function*() {
        const { a, b } = yield* Netns.twoHosts(offload ? {} : { extraArgs: ["--no-offload"] })
        const daemonA = yield* Netns.daemonOf(a)
        yield* pingAndTransferBothWays(a, b, TEN_MB)
        const { counters, line } = yield* Netns.requestCounters(daemonA)
        expect(counters["encap_bytes"], line).toBeGreaterThan(2 * TEN_MB)
        expect(counters["encap_bad_offload"] ?? 0, line).toBe(0)
        if (offload) {
          // super-packets: far fewer reads from the TUN device than packets sent
          expect(counters["tun_rx"]!, line).toBeLessThan(counters["encap_packets"]! / 4)
        } else {
          expect(counters["tun_rx"]!, line).toBeGreaterThanOrEqual(counters["encap_packets"]!)
        }
        const lines = yield* daemonA.lines
        expect(lines.some((l) => /offloads refused/.test(l)), lines.join("\n")).toBe(false)
      }), 300_000)
  }
})
