/**
 * Start and stop as a user sees them: SIGTERM/SIGINT remove the device and exit 0 within a second; bad arguments
 * or missing capabilities give one line, a non-zero exit, and no device (watched with `ip monitor`, so a device
 * created and removed again would be caught too).
 */
import { it } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration, nonEmptyLines } from "./support.js"

const ARGS = ["-4", "-6", "-d", "-r", "192.0.2.2", "-i", "ktun0", "--address", "198.51.100.1/30"]

/** Runs the daemon to completion in a fresh namespace, recording every link and address event meanwhile. */
const runWatched = (args: ReadonlyArray<string>, wrap: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const ns = yield* Netns.namespace
    const monitor = yield* Netns.spawn(ns, ["ip", "monitor", "link", "address"])
    yield* Effect.sleep("200 millis") // let the monitor subscribe before the daemon starts
    const result = yield* Netns.exec(ns, [...wrap, ...Netns.kiwitunCommand, ...args], { timeout: "20 seconds" })
    yield* Effect.sleep("200 millis")
    const events = nonEmptyLines((yield* monitor.lines).join("\n"))
    const links = (yield* Netns.links(ns)).map((l) => l.ifname)
    return { result, events, links, output: nonEmptyLines(`${result.stdout}\n${result.stderr}`) }
  })

describeIntegration("daemon lifecycle", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it.scopedLive(`${signal} removes the device and exits 0 within a second`, () =>
      Effect.gen(function*() {
        const ns = yield* Netns.namespace
        const daemon = yield* Netns.kiwitun(ns, ARGS)
        expect(Option.isSome(yield* Netns.link(ns, "ktun0"))).toBe(true)
        const sentAt = Date.now()
        yield* daemon.signal(signal)
        const exit = yield* daemon.exit.pipe(Effect.timeout("5 seconds"))
        const output = (yield* daemon.lines).join("\n")
        expect(exit.code, output).toBe(0)
        expect(exit.at - sentAt, output).toBeLessThan(1000)
        expect(yield* Netns.link(ns, "ktun0")).toEqual(Option.none())
        expect(Option.isSome(Netns.lastCounters(yield* daemon.lines)), output).toBe(true)
      }), 60_000)
  }

  const badArguments: ReadonlyArray<readonly [string, ReadonlyArray<string>]> = [
    ["a TTL of 300", ["-4", "-d", "-i", "ktun0", "--ttl", "300"]],
    ["an unparsable remote", ["-4", "-d", "-i", "ktun0", "-r", "not..valid"]],
    ["neither -4 nor -6", ["-d", "-i", "ktun0", "-r", "192.0.2.2"]],
    ["a 16-byte interface name", ["-4", "-d", "-r", "192.0.2.2", "-i", "ktun0123456789ab"]],
    ["an invalid inner address", ["-4", "-d", "-i", "ktun0", "--address", "198.51.100.300/30"]],
    ["a refresh period of 0", ["-4", "-d", "-i", "ktun0", "-r", "192.0.2.2", "--refresh", "0"]],
    ["an unknown option", ["-4", "-d", "-i", "ktun0", "--no-such-option"]]
  ]
  for (const [what, args] of badArguments) {
    it.scopedLive(`refuses ${what}: one line, non-zero exit, nothing created`, () =>
      Effect.gen(function*() {
        const { result, events, links, output } = yield* runWatched(args)
        expect(result.code, output.join("\n")).not.toBe(0)
        expect(result.code).not.toBeNull()
        expect(output, "exactly one line of output").toHaveLength(1)
        expect(links).toEqual(["lo"])
        expect(events, "link/address events while it ran").toEqual([])
      }), 60_000)
  }

  it.scopedLive("without CAP_NET_ADMIN/CAP_NET_RAW: one line naming what is missing, non-zero exit, no device", () =>
    Effect.gen(function*() {
      const nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
      const { result, events, links, output } = yield* runWatched(ARGS, nobody)
      expect(result.code, output.join("\n")).not.toBe(0)
      expect(output, "exactly one line of output").toHaveLength(1)
      expect(output.join("\n")).toMatch(/CAP_NET_ADMIN/)
      expect(links).toEqual(["lo"])
      expect(events).toEqual([])
    }), 60_000)

  it.scopedLive("--version prints one line and creates nothing", () =>
    Effect.gen(function*() {
      const { result, events, links, output } = yield* runWatched(["--version"])
      expect(result.code).toBe(0)
      expect(output).toHaveLength(1)
      expect(output[0]).toMatch(/\d+\.\d+\.\d+/)
      expect(links).toEqual(["lo"])
      expect(events).toEqual([])
    }), 60_000)
  it.scopedLive("bin/kiwitun runs Node with a 4 MiB semi-space; KIWITUN_NODE_FLAGS replaces the flags", () =>
    Effect.gen(function*() {
      const cmdline = (pid: number) => Fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")
      const ns = yield* Netns.namespace
      const plain = yield* Netns.kiwitun(ns, ARGS)
      const argv = cmdline(plain.pid)
      expect(Path.basename(argv[0]!)).toBe("node")
      expect(argv).toContain("--max-semi-space-size=4")
      expect(argv.some((a) => a.endsWith(Path.join("dist", "src", "main.js")))).toBe(true)
      yield* plain.signal("SIGTERM")
      yield* plain.exit.pipe(Effect.timeout("5 seconds"))

      const other = yield* Netns.kiwitun(ns, ARGS, {
        command: ["env", "KIWITUN_NODE_FLAGS=--max-semi-space-size=2 --stack-size=900", ...Netns.kiwitunCommand]
      })
      const replaced = cmdline(other.pid)
      expect(replaced).toContain("--max-semi-space-size=2")
      expect(replaced).toContain("--stack-size=900")
      expect(replaced).not.toContain("--max-semi-space-size=4")
    }), 60_000)
  it.scopedLive("a repeated switch counts once, with its last value, as with getopt", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const args = ["-4", "-d", "-r", "192.0.2.9", "-i", "ktun0", "--mtu", "1400", "-r192.0.2.2", "--mtu=1300", "-d"]
      const daemon = yield* Netns.kiwitun(ns, args)
      const up = (yield* daemon.lines).find((l) => /tunnel up/.test(l)) ?? ""
      expect(up).toMatch(/remote=192\.0\.2\.2\b/)
      expect(up).toMatch(/mtu=1300\b/)
      const link = yield* Netns.link(ns, "ktun0")
      expect(Option.map(link, (l) => l.mtu)).toEqual(Option.some(1300))
    }), 60_000)
})
