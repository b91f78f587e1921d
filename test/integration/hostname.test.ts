/**
 * Remote endpoint by host name (behaviour.md "Remote endpoint by hostname"): `-r peer.test` goes through the system
 * resolver, so the name comes from the namespace's own hosts file: `ip netns exec NS` bind-mounts every file in
 * /etc/netns/NS over the one of the same name in /etc. A is the host with the name; B and C both run the far end
 * with the same inner address, so whichever one A's answer points at is the one that replies, and the per-daemon
 * counters show where the packets went.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { it } from "@effect/vitest"
import type { Scope } from "effect"
import { Data, Effect, Option } from "effect"
import { afterEach, expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

class EtcError extends Data.TaggedError("EtcError")<{ readonly message: string }> {}

const NETNS_ETC = "/etc/netns"

const failure = (what: string) => (cause: unknown) =>
  new EtcError({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` })

/** Our own /etc/netns entries still present (every namespace name of this process starts with the prefix). */
const etcLeftovers = (): ReadonlyArray<string> =>
  Fs.existsSync(NETNS_ETC) ? Fs.readdirSync(NETNS_ETC).filter((n) => n.startsWith(Netns.namespacePrefix)) : []

interface NamespaceEtc {
  /** Rewrites the namespace's hosts file in place (same inode: the bind mount of a running process sees it). */
  readonly setHosts: (entries: ReadonlyArray<readonly [address: string, name: string]>) => Effect.Effect<void, EtcError>
}

/**
 * /etc/netns/<ns>/ with a hosts file (localhost only) and an nsswitch.conf that answers host names from that file
 * alone, so a missing name fails at once and the same way on every machine instead of going out to the host's DNS.
 * Both files must exist before the process starts: `ip netns exec` mounts only what is there at exec time.
 * Removed (with /etc/netns itself when this created it and it is empty) when the scope closes.
 */
const namespaceEtc = (ns: Netns.Namespace): Effect.Effect<NamespaceEtc, EtcError, Scope.Scope> => {
  const dir = Path.join(NETNS_ETC, ns.name)
  const hostsPath = Path.join(dir, "hosts")
  const setHosts = (entries: ReadonlyArray<readonly [string, string]>) =>
    Effect.try({
      try: () =>
        Fs.writeFileSync(
          hostsPath,
          ["127.0.0.1 localhost", "::1 localhost", ...entries.map(([address, name]) => `${address} ${name}`), ""]
            .join("\n")
        ),
      catch: failure(`cannot write ${hostsPath}`)
    })
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const createdRoot = !Fs.existsSync(NETNS_ETC)
        Fs.mkdirSync(dir, { recursive: true })
        return createdRoot
      },
      catch: failure(`cannot create ${dir}`)
    }).pipe(
      // another process may remove an empty /etc/netns between the two levels of the mkdir
      Effect.retry({ times: 3 })
    ),
    (createdRoot) =>
      Effect.sync(() => {
        Fs.rmSync(dir, { recursive: true, force: true })
        if (createdRoot) {
          try {
            Fs.rmdirSync(NETNS_ETC)
          } catch {
            // not empty: another run's namespace still uses it
          }
        }
      })
  ).pipe(
    Effect.zipRight(setHosts([])),
    Effect.zipRight(Effect.try({
      try: () => Fs.writeFileSync(Path.join(dir, "nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files\n"),
      catch: failure(`cannot write ${dir}/nsswitch.conf`)
    })),
    Effect.as({ setHosts })
  )
}

/**
 * Tunnel names unique to this process and host: the daemon keeps its control socket at /run/kiwitun/<ifname>.sock,
 * a path every namespace shares, so of two same-named daemons (here, or in a run next to this one) the second finds
 * it taken and the first gets its liveness probe.
 */
const tunnelName = (host: "a" | "b" | "c") => `kt${process.pid}${host}`
const farEnd = (host: "b" | "c", hubAddress: string) =>
  ["-4", "-d", "-r", hubAddress, "-i", tunnelName(host), "--address", "198.51.100.2/30"]
const nearEnd = (remote: string) => ["-4", "-d", "-r", remote, "-i", tunnelName("a"), "--address", "198.51.100.1/30"]
const FAR_INNER = "198.51.100.2"

/**
 * A joined to B by veth0 (192.0.2.1 - 192.0.2.2) and to C by veth1 (203.0.113.1 - 203.0.113.2); B and C each run
 * the far end with A's address on their link as the fixed remote. IPv4 only (-4): a fresh TUN's own IPv6 chatter
 * (router solicitations, MLD) is then dropped at A instead of reaching B or C and muddying their counters.
 */
const triangle = Effect.gen(function*() {
  const a = yield* Netns.namespace
  const b = yield* Netns.namespace
  const c = yield* Netns.namespace
  yield* Netns.veth({ a, b, nameA: "veth0", addressA: "192.0.2.1/24", addressB: "192.0.2.2/24" })
  yield* Netns.veth({ a, b: c, nameA: "veth1", addressA: "203.0.113.1/24", addressB: "203.0.113.2/24" })
  const etc = yield* namespaceEtc(a)
  const [daemonB, daemonC] = yield* Effect.all([
    Netns.kiwitun(b, farEnd("b", "192.0.2.1")),
    Netns.kiwitun(c, farEnd("c", "203.0.113.1"))
  ], { concurrency: 2 })
  return { a, b, c, etc, daemonB, daemonC }
})

/** Packets each far end received from the network, by its own count. */
const received = (daemons: { readonly daemonB: Netns.Process; readonly daemonC: Netns.Process }) =>
  Effect.all({
    b: Effect.map(Netns.requestCounters(daemons.daemonB), ({ counters }) => counters["net_rx"] ?? 0),
    c: Effect.map(Netns.requestCounters(daemons.daemonC), ({ counters }) => counters["net_rx"] ?? 0)
  })

describeIntegration("remote endpoint by host name", () => {
  afterEach(() => {
    expect(etcLeftovers(), `entries left behind in ${NETNS_ETC}`).toEqual([])
  })

  it.scopedLive("resolves the name through the namespace's hosts file and follows a changed answer on SIGHUP", () =>
    Effect.gen(function*() {
      const net = yield* triangle
      yield* net.etc.setHosts([["192.0.2.2", "peer.test"]])
      const daemonA = yield* Netns.kiwitun(net.a, nearEnd("peer.test"))
      expect(yield* daemonA.waitForLine(/remote resolved/, { timeout: "5 seconds" })).toContain("192.0.2.2")

      const before = yield* received(net)
      const toB = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(toB.received, toB.output).toBe(2)
      const afterB = yield* received(net)
      expect(afterB.b - before.b, "B received the requests").toBeGreaterThanOrEqual(2)
      expect(afterB.c - before.c, "C received nothing").toBe(0)

      yield* net.etc.setHosts([["203.0.113.2", "peer.test"]])
      const mark = yield* daemonA.mark
      yield* daemonA.signal("SIGHUP")
      const changed = yield* daemonA.waitForLine(/remote changed/, { after: mark, timeout: "5 seconds" })
      expect(changed).toContain("203.0.113.2")
      expect(changed).toContain("192.0.2.2")

      const toC = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(toC.received, toC.output).toBe(2)
      const afterC = yield* received(net)
      expect(afterC.c - afterB.c, "C received the requests").toBeGreaterThanOrEqual(2)
      expect(afterC.b - afterB.b, "B received nothing after the change").toBe(0)

      // A failed lookup keeps the last good address.
      yield* net.etc.setHosts([])
      const mark2 = yield* daemonA.mark
      yield* daemonA.signal("SIGHUP")
      yield* daemonA.waitForLine(/remote lookup failed, keeping the last good address/, {
        after: mark2,
        timeout: "5 seconds"
      })
      const stillC = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(stillC.received, stillC.output).toBe(2)
      const afterFail = yield* received(net)
      expect(afterFail.c - afterC.c).toBeGreaterThanOrEqual(2)
      expect(afterFail.b - afterC.b).toBe(0)
      expect(Option.isNone(yield* daemonA.exited), "A is still running").toBe(true)
    }), 60_000)

  it.scopedLive("starts without an answer, answers Destination Unreachable, and resolves on SIGHUP", () =>
    Effect.gen(function*() {
      const net = yield* triangle
      const daemonA = yield* Netns.kiwitun(net.a, nearEnd("peer.test"))
      yield* daemonA.waitForLine(/remote lookup failed, retrying/, { timeout: "5 seconds" })

      const unknown = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(unknown.received, unknown.output).toBe(0)
      expect(unknown.output).toContain("Destination Host Unreachable")
      const { counters, line } = yield* Netns.requestCounters(daemonA)
      expect(counters["encap_no_route"], line).toBeGreaterThanOrEqual(2)
      expect(counters["encap_packets"] ?? 0, line).toBe(0)

      yield* net.etc.setHosts([["203.0.113.2", "peer.test"]])
      const mark = yield* daemonA.mark
      yield* daemonA.signal("SIGHUP")
      expect(yield* daemonA.waitForLine(/remote resolved/, { after: mark, timeout: "5 seconds" }))
        .toContain("203.0.113.2")
      const before = yield* received(net)
      const known = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(known.received, known.output).toBe(2)
      const after = yield* received(net)
      expect(after.c - before.c).toBeGreaterThanOrEqual(2)
      expect(after.b - before.b).toBe(0)
    }), 60_000)

  it.scopedLive("retries the first lookup with backoff (first retry after about a second) until it answers", () =>
    Effect.gen(function*() {
      const net = yield* triangle
      const daemonA = yield* Netns.kiwitun(net.a, nearEnd("peer.test"))
      yield* daemonA.waitForLine(/remote lookup failed, retrying/, { timeout: "5 seconds" })
      const writtenAt = Date.now()
      yield* net.etc.setHosts([["192.0.2.2", "peer.test"]])
      // No signal: the retry schedule alone must find the new entry (1 s, then 2 s later, ...).
      expect(yield* daemonA.waitForLine(/remote resolved/, { timeout: "5 seconds" })).toContain("192.0.2.2")
      expect(Date.now() - writtenAt).toBeLessThan(3_500)
      const toB = yield* Netns.ping(net.a, FAR_INNER, { count: 2, wait: 1 })
      expect(toB.received, toB.output).toBe(2)
    }), 60_000)
})
