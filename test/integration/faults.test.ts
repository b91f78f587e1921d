/**
 * Faults around a running daemon, each done to a real one in namespaces: its remote's name stops resolving
 * (behaviour.md "Remote endpoint by hostname": keep the last good address), its TUN device is deleted under it
 * (fatal: a clear error, exit code 1, nothing left behind), its underlay interface goes down and up, and its sends
 * fail (no route, unreachable and prohibit routes, a firewall drop): counted as `encap_send_error`, logged at most
 * once per 10 seconds, never fatal, and traffic resumes once the fault is gone.
 */
import * as Fs from "node:fs"
import { it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { ci, describeIntegration } from "./support.js"

/** nftables for the firewall fault; .ci/run installs it, so under CI=true a missing `nft` fails instead. */
const haveNft = Netns.onPath("nft")

/** The daemon's arguments with another fixed remote. */
const withRemote = (args: ReadonlyArray<string>, remote: string): ReadonlyArray<string> =>
  args.map((arg, i) => (i > 0 && args[i - 1] === "-r" ? remote : arg))

const SEND_FAILED = /\bsend failed\b/

/** Lines of `proc` (from line `after` on) matching `pattern`. */
const linesMatching = (proc: Netns.Process, pattern: RegExp, after = 0) =>
  Effect.map(proc.lines, (lines) => lines.slice(after).filter((l) => pattern.test(l)))

/** The time stamp the foreground logger puts first on each line. */
const loggedAt = (line: string): number => Date.parse(line.split(" ")[0] ?? "")

const sendErrors = (proc: Netns.Process) =>
  Effect.map(Netns.requestCounters(proc), ({ counters }) => counters["encap_send_error"] ?? 0)

/** A short burst of pings through the tunnel (20 at 50 ms): all answered, or none while a fault lasts. */
const burst = (from: Netns.TunnelHost, to: Netns.TunnelHost) =>
  Netns.ping(from.ns, to.inner4, { count: 20, interval: 0.05, wait: 1 })

/** Pings until one is answered (the underlay may need a moment: carrier, ARP), then a clean burst. */
const resumes = (from: Netns.TunnelHost, to: Netns.TunnelHost) =>
  Effect.gen(function*() {
    const first = yield* Netns.ping(from.ns, to.inner4, { count: 1, deadline: 10, wait: 1, interval: 0.2 })
    expect(first.received, first.output).toBe(1)
    const after = yield* burst(from, to)
    expect(after.received, after.output).toBe(20)
  })

describeIntegration("faults", () => {
  it.scopedLive("keeps the last good address when DNS answers NXDOMAIN or cannot be reached", () =>
    Effect.gen(function*() {
      const net = yield* Netns.twoHosts({ startDaemons: false })
      const { a, b } = net
      // The resolver of A's namespace: no host entry for the peer, DNS on the namespace's own loopback, one quick
      // try per lookup.
      const etc = yield* Netns.namespaceEtc(a.ns, {
        "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
        "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
      })
      const answering = yield* Netns.dnsServer(a.ns, "127.0.0.1", 53, { "peer.test": b.underlay })
      yield* Netns.kiwitun(b.ns, [...b.args, "--control-socket", Netns.controlSocketOf(b.ns)])
      const daemon = yield* Netns.kiwitun(a.ns, [
        ...withRemote(a.args, "peer.test"),
        "--control-socket",
        Netns.controlSocketOf(a.ns)
      ])
      expect(yield* daemon.waitForLine(/remote resolved/, { timeout: "10 seconds" })).toContain(b.underlay)
      expect(yield* answering.waitForLine(/^query peer\.test A /)).toContain(b.underlay)
      const before = yield* burst(a, b)
      expect(before.received, before.output).toBe(20)
      // A packet the kernel wrote into the device before the first answer may have met no remote; none after it.
      const noRouteBefore = (yield* Netns.requestCounters(daemon)).counters["encap_no_route"] ?? 0

      /** SIGHUP, and the warning of the failed lookup with its reason. */
      const failedLookup = (reason: RegExp) =>
        Effect.gen(function*() {
          const mark = yield* daemon.mark
          yield* daemon.signal("SIGHUP")
          const line = yield* daemon.waitForLine(/remote lookup failed, keeping the last good address/, {
            after: mark,
            timeout: "10 seconds"
          })
          expect(line).toMatch(reason)
          const still = yield* burst(a, b)
          expect(still.received, `tunnel still up after: ${line}\n${still.output}`).toBe(20)
          expect(Option.isNone(yield* daemon.exited)).toBe(true)
        })

      // NXDOMAIN from a server that answers
      yield* answering.signal("SIGTERM")
      yield* answering.exit
      const nxdomain = yield* Netns.dnsServer(a.ns, "127.0.0.1", 53, {})
      yield* failedLookup(/reason=notFound/)
      expect(yield* nxdomain.waitForLine(/^query peer\.test A /)).toContain("NXDOMAIN")

      // Nothing listening on the server's port
      yield* nxdomain.signal("SIGTERM")
      yield* nxdomain.exit
      yield* failedLookup(/reason=failure/)

      // No route to the configured server at all. A server on the old address now answers with another address:
      // the lookup must fail rather than reach it, and the daemon must not take the other address.
      const stale = yield* Netns.dnsServer(a.ns, "127.0.0.1", 53, { "peer.test": "192.0.2.99" })
      yield* etc.write("resolv.conf", "nameserver 203.0.113.53\noptions timeout:1 attempts:1\n")
      yield* failedLookup(/reason=failure/)
      expect(yield* linesMatching(stale, /^query /), "queries to the old server").toEqual([])
      expect(yield* linesMatching(daemon, /remote changed/)).toEqual([])

      const { counters, line } = yield* Netns.requestCounters(daemon)
      expect(counters["encap_no_route"] ?? 0, `no packet lost its remote: ${line}`).toBe(noRouteBefore)
    }), 60_000)

  it.scopedLive("exits with code 1 and a clear error when its TUN device is deleted, leaving nothing behind", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const daemon = yield* Netns.daemonOf(a)
      const ping = yield* Netns.ping(a.ns, b.inner4, { count: 2 })
      expect(ping.received, ping.output).toBe(2)
      expect(Fs.existsSync(Netns.controlSocketOf(a.ns))).toBe(true)

      const deletedAt = Date.now()
      yield* Netns.ip(a.ns, "link", "del", a.ifname)
      const exit = yield* daemon.exit.pipe(Effect.timeout("10 seconds"))
      const output = (yield* daemon.lines).join("\n")
      expect(exit.code, output).toBe(1)
      expect(exit.at - deletedAt, output).toBeLessThan(5_000)
      // One last line naming the device and the failed call, e.g. "kiwitun: read ktun0: EBADFD (...)"
      expect((yield* daemon.stderr).trim().split("\n").pop()).toMatch(/^kiwitun: .*\bktun0\b.*\bE[A-Z]+ \(/)
      expect(yield* Netns.namespacePids(a.ns), "processes left in the namespace").toEqual([])
      expect(yield* Netns.rawSockets(a.ns), "raw sockets left open").toEqual([])
      expect(Fs.existsSync(Netns.controlSocketOf(a.ns)), "control socket removed").toBe(false)
      expect(Option.isNone(yield* Netns.link(a.ns, a.ifname))).toBe(true)
    }), 60_000)

  it.scopedLive("carries traffic again, without a restart, after its underlay interface goes down and up", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const daemon = yield* Netns.daemonOf(a)
      const up = yield* burst(a, b)
      expect(up.received, up.output).toBe(20)

      const errorsBefore = yield* sendErrors(daemon)
      yield* Netns.ip(a.ns, "link", "set", "veth0", "down")
      const down = yield* burst(a, b)
      expect(down.received, down.output).toBe(0)
      // The connected route went with the link: every request the daemon tried to send failed.
      expect((yield* sendErrors(daemon)) - errorsBefore).toBeGreaterThanOrEqual(down.transmitted)

      yield* Netns.ip(a.ns, "link", "set", "veth0", "up")
      const addresses = yield* Netns.ip(a.ns, "-4", "-o", "address", "show", "dev", "veth0")
      if (!addresses.stdout.includes(`${a.underlay}/24`)) {
        yield* Netns.ip(a.ns, "address", "add", `${a.underlay}/24`, "dev", "veth0")
      }
      yield* resumes(a, b)
      yield* resumes(b, a)
      expect(Option.isNone(yield* daemon.exited), "never restarted").toBe(true)
      expect(yield* linesMatching(daemon, /tunnel up/), "one start only").toHaveLength(1)
    }), 60_000)

  const routeFaults = [
    {
      what: "the route to the remote deleted",
      errno: 101, // ENETUNREACH
      add: ["route", "del", "192.0.2.0/24", "dev", "veth0"],
      remove: ["route", "add", "192.0.2.0/24", "dev", "veth0", "proto", "kernel", "scope", "link", "src", "192.0.2.1"]
    },
    {
      what: "an unreachable route",
      errno: 113, // EHOSTUNREACH
      add: ["route", "add", "unreachable", "192.0.2.2/32"],
      remove: ["route", "del", "unreachable", "192.0.2.2/32"]
    },
    {
      what: "a prohibit route",
      errno: 13, // EACCES
      add: ["route", "add", "prohibit", "192.0.2.2/32"],
      remove: ["route", "del", "prohibit", "192.0.2.2/32"]
    }
  ] as const

  it.scopedLive("counts send errors from route faults, logs them once, and recovers", () =>
    Effect.gen(function*() {
      const figures: Array<string> = []
      for (const fault of routeFaults) {
        yield* Effect.scoped(Effect.gen(function*() {
          const { a, b } = yield* Netns.twoHosts()
          const daemon = yield* Netns.daemonOf(a)
          const errorsBefore = yield* sendErrors(daemon)
          yield* Netns.ip(a.ns, ...fault.add)
          const during = yield* burst(a, b)
          expect(during.received, `${fault.what}: ${during.output}`).toBe(0)
          const counted = (yield* sendErrors(daemon)) - errorsBefore
          expect(counted, fault.what).toBeGreaterThanOrEqual(during.transmitted)
          const logged = yield* linesMatching(daemon, SEND_FAILED)
          expect(logged, `${fault.what}: one warning for ${counted} errors`).toHaveLength(1)
          expect(logged[0]).toMatch(new RegExp(`\\berrno=${fault.errno}\\b`))

          yield* Netns.ip(a.ns, ...fault.remove)
          yield* resumes(a, b)
          expect(Option.isNone(yield* daemon.exited), fault.what).toBe(true)
          figures.push(`${fault.what}: errno ${fault.errno}, ${counted} send errors, ${logged.length} warning`)
        }))
      }
      yield* Effect.logInfo("route faults").pipe(Effect.annotateLogs({ figures: figures.join("; ") }))
    }), 90_000)

  it.scopedLive("logs continuous send errors at most once per 10 seconds", () =>
    Effect.gen(function*() {
      const { a, b } = yield* Netns.twoHosts()
      const daemon = yield* Netns.daemonOf(a)
      const errorsBefore = yield* sendErrors(daemon)
      yield* Netns.ip(a.ns, "route", "add", "unreachable", "192.0.2.2/32")
      // 12 seconds of steady traffic into the fault
      const during = yield* Netns.ping(a.ns, b.inner4, { count: 240, interval: 0.05, wait: 1, timeout: "40 seconds" })
      expect(during.received).toBe(0)
      const counted = (yield* sendErrors(daemon)) - errorsBefore
      const logged = yield* linesMatching(daemon, SEND_FAILED)
      yield* Effect.logInfo("send errors over 12 s").pipe(
        Effect.annotateLogs({ counted, warnings: logged.length, lines: logged.join(" | ") })
      )
      expect(counted).toBeGreaterThanOrEqual(during.transmitted)
      expect(logged, "a warning at the first error and one 10 s later").toHaveLength(2)
      expect(loggedAt(logged[1]!) - loggedAt(logged[0]!)).toBeGreaterThanOrEqual(10_000)
      // the second warning tells how many errors it stands for
      expect(Number(/\bcount=(\d+)/.exec(logged[1]!)?.[1] ?? 0)).toBeGreaterThan(100)

      yield* Netns.ip(a.ns, "route", "del", "unreachable", "192.0.2.2/32")
      yield* resumes(a, b)
    }), 90_000)

  it.scopedLive.skipIf(!haveNft && !ci)("counts EPERM from a firewall drop on output, and recovers when it goes", () =>
    Effect.gen(function*() {
      expect(haveNft, "nft on PATH (.ci/run installs nftables)").toBe(true)
      const { a, b } = yield* Netns.twoHosts()
      const daemon = yield* Netns.daemonOf(a)
      const errorsBefore = yield* sendErrors(daemon)
      const rules = [
        "table ip kiwitun_fault {",
        "  chain out {",
        "    type filter hook output priority 0; policy accept;",
        `    ip daddr ${b.underlay} ip protocol { 4, 41 } drop`,
        "  }",
        "}",
        ""
      ].join("\n")
      yield* Netns.execOk(a.ns, ["nft", "-f", "-"], { input: rules })
      const during = yield* burst(a, b)
      expect(during.received, during.output).toBe(0)
      const counted = (yield* sendErrors(daemon)) - errorsBefore
      expect(counted).toBeGreaterThanOrEqual(during.transmitted)
      const logged = yield* linesMatching(daemon, SEND_FAILED)
      expect(logged).toHaveLength(1)
      expect(logged[0]).toMatch(/\berrno=1\b/) // EPERM

      yield* Netns.execOk(a.ns, ["nft", "delete", "table", "ip", "kiwitun_fault"])
      yield* resumes(a, b)
      expect(Option.isNone(yield* daemon.exited)).toBe(true)
    }), 60_000)
})
