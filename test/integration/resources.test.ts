/**
 * Resource safety: fifty quick starts and stops in one namespace leave no device, process, socket or file behind,
 * and a long-running daemon does not gain file descriptors from what it does again and again (re-resolving its
 * remote on SIGHUP, answering status queries on its control socket, logging counters on SIGUSR1).
 */
import * as Fs from "node:fs"
import { it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import * as Control from "../../src/Control.js"
import { describeIntegration } from "./support.js"

const IFNAME = "ktun0"
const CYCLES = 50

/** The daemon's open descriptors: number -> what it points at. */
const openFds = (pid: number): Readonly<Record<string, string>> => {
  const dir = `/proc/${pid}/fd`
  const out: Record<string, string> = {}
  for (const fd of Fs.readdirSync(dir)) {
    try {
      out[fd] = Fs.readlinkSync(`${dir}/${fd}`)
    } catch {
      // closed between the listing and the read
    }
  }
  return out
}

/** Descriptors present in one listing and not in the other, for the failure message. */
const fdDifference = (before: Readonly<Record<string, string>>, after: Readonly<Record<string, string>>) => ({
  opened: Object.entries(after).filter(([fd, target]) => before[fd] !== target).map(([fd, t]) => `${fd} -> ${t}`),
  closed: Object.entries(before).filter(([fd, target]) => after[fd] !== target).map(([fd, t]) => `${fd} -> ${t}`)
})

describeIntegration("resource safety", () => {
  it.scopedLive(`starts and stops ${CYCLES} times in one namespace, leaving nothing behind`, () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const socket = Netns.controlSocketOf(ns)
      const args = ["-4", "-6", "-d", "-r", "192.0.2.2", "-i", IFNAME, "--address", "198.51.100.1/30",
        "--control-socket", socket]
      const monitor = yield* Netns.spawn(ns, ["ip", "-o", "monitor", "link"])
      yield* Effect.sleep("200 millis") // let the monitor subscribe
      const began = Date.now()
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const daemon = yield* Netns.kiwitun(ns, args)
          yield* daemon.signal("SIGTERM")
          const exit = yield* daemon.exit.pipe(Effect.timeout("5 seconds"))
          expect(exit.code, `cycle ${cycle}: ${(yield* daemon.lines).join("\n")}`).toBe(0)
        }))
        expect(yield* Netns.link(ns, IFNAME), `cycle ${cycle}: device removed`).toEqual(Option.none())
      }
      const elapsed = Date.now() - began
      yield* Effect.sleep("200 millis")

      expect((yield* Netns.links(ns)).map((l) => l.ifname), "links left").toEqual(["lo"])
      const pids = (yield* Netns.namespacePids(ns)).filter((pid) => pid !== monitor.pid)
      expect(pids, "processes left").toEqual([])
      expect(yield* Netns.rawSockets(ns), "raw sockets left").toEqual([])
      expect(Fs.existsSync(socket), "control socket left").toBe(false)
      // Every device the daemons created was deleted again: one new ifindex per cycle, each with its deletion.
      const events = (yield* monitor.lines).filter((l) => l.includes(` ${IFNAME}:`))
      const indexOf = (line: string) => /^(?:Deleted )?(\d+): /.exec(line)?.[1]
      const created = new Set(events.filter((l) => !l.startsWith("Deleted")).map(indexOf))
      const deleted = new Set(events.filter((l) => l.startsWith("Deleted")).map(indexOf))
      expect(created.size).toBe(CYCLES)
      expect([...deleted].sort()).toEqual([...created].sort())
      yield* Effect.logInfo("start/stop cycles").pipe(
        Effect.annotateLogs({ cycles: CYCLES, elapsedMs: elapsed, perCycleMs: Math.round(elapsed / CYCLES) })
      )
    }), 120_000)

  it.scopedLive(`keeps its descriptors through ${CYCLES} re-resolutions, status queries and counter logs`, () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const hosts = (peer: string) => `127.0.0.1 localhost\n::1 localhost\n${peer} peer.test\n`
      const etc = yield* Netns.namespaceEtc(ns, {
        "hosts": hosts("192.0.2.2"),
        "nsswitch.conf": "passwd: files\ngroup: files\nhosts: files\n"
      })
      const socket = Netns.controlSocketOf(ns)
      const daemon = yield* Netns.kiwitun(ns, [
        "-4",
        "-d",
        "-r",
        "peer.test",
        "-i",
        IFNAME,
        "--address",
        "198.51.100.1/30",
        "--control-socket",
        socket
      ])
      yield* daemon.waitForLine(/remote resolved/)
      // Warm up each path once, so that what is opened once and kept (the libuv thread pool, a resolver's
      // descriptors) is there before the first count.
      yield* Control.query(socket)
      yield* Netns.requestCounters(daemon)
      yield* Effect.sleep("500 millis")
      const before = openFds(daemon.pid)

      for (let i = 0; i < CYCLES; i++) {
        yield* etc.write("hosts", hosts(i % 2 === 0 ? "192.0.2.3" : "192.0.2.2"))
        const mark = yield* daemon.mark
        yield* daemon.signal("SIGHUP")
        yield* daemon.waitForLine(/remote changed/, { after: mark })
        const report = yield* Control.query(socket)
        expect(report.pid).toBe(daemon.pid)
        yield* Netns.requestCounters(daemon)
      }
      // A few through the command itself, as a user would run it.
      for (let i = 0; i < 3; i++) {
        const status = yield* Netns.statusCounters(ns, socket)
        expect(status["tun_rx"]).toBeGreaterThanOrEqual(0)
      }

      // Sockets of the last queries may take a moment to be closed.
      const settled = yield* Netns.pollUntilSome(
        Effect.sync(() => {
          const now = openFds(daemon.pid)
          return Object.keys(now).length === Object.keys(before).length ? Option.some(now) : Option.none()
        }),
        "100 millis"
      ).pipe(Effect.timeout("3 seconds"), Effect.option)
      const after = openFds(daemon.pid)
      yield* Effect.logInfo("descriptors").pipe(Effect.annotateLogs({
        before: Object.keys(before).length,
        after: Object.keys(after).length
      }))
      expect(Option.isSome(settled), JSON.stringify(fdDifference(before, after))).toBe(true)
      expect(Object.keys(after).length).toBe(Object.keys(before).length)
      expect(Option.isNone(yield* daemon.exited)).toBe(true)
    }), 120_000)
})
