/**
 * The benchmark's threaded variant (bench/lib/ThreadedDaemon: the same Tunnel pipeline, one worker thread per
 * direction over the fds the main thread opened) must carry traffic like the daemon, or its figures mean nothing.
 */
import { it } from "@effect/vitest"
import { Effect } from "effect"
import * as Path from "node:path"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration, pingAndTransferBothWays } from "./support.js"

const TEN_MB = 10 * 1024 * 1024
const threaded = [process.execPath, Path.join(Netns.repoRoot, "dist", "bench", "lib", "ThreadedDaemon.js")]

describeIntegration("threaded benchmark variant", () => {
  it.scopedLive("ping and 10 MB of TCP each way over IPv4 and IPv6, intact; both threads stop on SIGTERM", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts({ command: threaded })
      yield* pingAndTransferBothWays(a, b, TEN_MB)
      const daemonA = yield* Netns.daemonOf(a)
      yield* daemonA.signal("SIGTERM")
      const exit = yield* daemonA.exit.pipe(Effect.timeout("5 seconds"))
      const lines = yield* daemonA.lines
      expect(exit.code, lines.join("\n")).toBe(0)
      // each thread logs its own counters when it stops: the encap thread sent, the decap thread received
      const counters = lines.filter((l) => Netns.COUNTER_LINE.test(l)).map(Netns.parseCounters)
      expect(counters.some((c) => (c["encap_bytes"] ?? 0) > 2 * TEN_MB && (c["decap_packets"] ?? 0) === 0)).toBe(true)
      expect(counters.some((c) => (c["decap_bytes"] ?? 0) > 2 * TEN_MB && (c["encap_packets"] ?? 0) === 0)).toBe(true)
    }), 300_000)
})
