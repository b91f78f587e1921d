/**
 * Interoperability with an independent implementation of the encapsulation: kiwitun on one host, the C reference
 * tunnel (bench/reference/ctun.c, built with cc) on the other, both roles. ctun lets the kernel build its outer
 * headers and reads protocol 4 and protocol 41 on separate raw sockets, checking that the inner version matches the
 * protocol (RFC 2003: IPv4 in protocol 4; RFC 4213: IPv6 in protocol 41), so pings and byte-exact transfers both
 * ways pass only if kiwitun's encapsulation and decapsulation agree with plain IPIP and 6in4 on the wire.
 */
import { it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { expect } from "vitest"
import * as Reference from "../../bench/lib/Reference.js"
import * as Netns from "../../scripts/lib/Netns.js"
import { ci, describeIntegration, pingAndTransferBothWays } from "./support.js"

/** The C compiler builds ctun; .ci/run installs gcc, so under CI=true a missing `cc` fails instead. */
const haveCc = Netns.onPath("cc")

const BYTES = 4 * 1024 * 1024

/**
 * kiwitun's drop counters that a malformed packet from the other implementation would raise. (Drops of the inner
 * content, such as the unspecified IPv6 source of an early MLD report from the fresh TUN device, say nothing
 * about the encapsulation.)
 */
const MALFORMED = [
  "decap_outer_bad_checksum",
  "decap_outer_bad_header",
  "decap_outer_truncated",
  "decap_oversize",
  "decap_fragment",
  "decap_inner_bad_version",
  "decap_inner_bad_header",
  "decap_inner_bad_checksum",
  "decap_inner_truncated",
  "decap_remote_mismatch",
  "decap_mode_disabled",
  "decap_write_error"
] as const

/** kiwitun on one host of a fresh pair (with its own control socket), ctun on the other. */
const mixedPair = (kiwitunOn: "a" | "b") =>
  Effect.gen(function*() {
    const { binary } = yield* Reference.ensureBuilt()
    const hosts = yield* Netns.twoHosts({ startDaemons: false })
    const [mine, other] = kiwitunOn === "a" ? [hosts.a, hosts.b] : [hosts.b, hosts.a]
    const daemon = yield* Netns.kiwitun(mine.ns, [...mine.args, "--control-socket", Netns.controlSocketOf(mine.ns)])
    const kiwitun: Netns.TunnelHost = { ...mine, daemon: Option.some(daemon) }
    const ctun = yield* Reference.host(other, mine, { binary })
    return { kiwitun, ctun, daemon, ctunProcess: yield* Netns.daemonOf(ctun) }
  })

describeIntegration("interop with the C reference tunnel (ctun)", () => {
  for (const kiwitunOn of ["a", "b"] as const) {
    const roles = kiwitunOn === "a" ? "kiwitun on A, ctun on B" : "ctun on A, kiwitun on B"
    it.scopedLive.skipIf(!haveCc && !ci)(`${roles}: 4in4 and 6in4 pings and transfers both ways arrive intact`, () =>
      Effect.gen(function*() {
        expect(haveCc, "cc on PATH (.ci/run installs gcc and libc6-dev)").toBe(true)
        const { ctun, ctunProcess, daemon, kiwitun } = yield* mixedPair(kiwitunOn)
        const [a, b] = kiwitunOn === "a" ? [kiwitun, ctun] : [ctun, kiwitun]
        yield* pingAndTransferBothWays(a, b, BYTES)

        const { counters, line } = yield* Netns.requestCounters(daemon)
        // Both transfers towards kiwitun's host (IPv4 and IPv6) came out of ctun as at least one packet per MSS.
        expect(counters["decap_packets"] ?? 0, line).toBeGreaterThan((2 * BYTES) / 1500)
        expect(counters["encap_packets"] ?? 0, line).toBeGreaterThan((2 * BYTES) / 1500)
        for (const name of MALFORMED) expect(counters[name] ?? 0, `${name}: ${line}`).toBe(0)
        // nothing lost on the way out either (a pending ICMP report no longer costs the packet being sent)
        expect(counters["encap_send_error"] ?? 0, line).toBe(0)
        expect(Option.isNone(yield* ctunProcess.exited), (yield* ctunProcess.lines).join("\n")).toBe(true)
      }), 180_000)
  }

  it.scopedLive.skipIf(!haveCc && !ci)("ctun takes 6in4 on its protocol 41 socket only: with -4 alone IPv6 fails", () =>
    Effect.gen(function*() {
      expect(haveCc, "cc on PATH (.ci/run installs gcc and libc6-dev)").toBe(true)
      const { binary } = yield* Reference.ensureBuilt()
      const { a, b } = yield* Netns.twoHosts({ startDaemons: false })
      yield* Netns.kiwitun(a.ns, [...a.args, "--control-socket", Netns.controlSocketOf(a.ns)])
      yield* Reference.host(b, a, { binary, sit: false })
      const v4 = yield* Netns.ping(a.ns, b.inner4, { count: 2 })
      expect(v4.received, v4.output).toBe(2)
      // kiwitun still sends 6in4, but B has no protocol 41 socket, and ctun's IPIP socket never sees protocol 41.
      const v6 = yield* Netns.ping(a.ns, b.inner6, { count: 2, wait: 1 })
      expect(v6.received, v6.output).toBe(0)
    }), 60_000)
})
