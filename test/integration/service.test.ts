/**
 * Running as a service, as a user and a service manager see it: daemonizing with a readiness handshake, syslog,
 * the notify protocol, least privilege (capabilities only; --user), the control socket behind `kiwitun status`,
 * signals and the pidfile.
 *
 * Every daemon here is given its own pidfile and control socket in a temporary directory, so nothing is written
 * under the host's /run. Syslog is received on a datagram socket that only the daemon sees as /dev/log: it runs in a
 * private mount namespace whose /dev is a tmpfs of links to the real entries plus that one.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { it } from "@effect/vitest"
import type { Scope } from "effect"
import { Duration, Effect, Option, Schema } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import type { StatusReport } from "../../src/domain/Status.js"
import { StatusReportJson } from "../../src/domain/Status.js"
import { describeIntegration, nonEmptyLines } from "./support.js"

const NOBODY = 65534
const dist = Path.join(Netns.repoRoot, "dist")
const listenerScript = Path.join(Netns.repoRoot, "test", "integration", "fixtures", "dgram-listen.mjs")
/** Variables a CI job run by systemd may have: they must not leak into the daemons unless a test sets them. */
const cleanEnv = ["env", "-u", "NOTIFY_SOCKET", "-u", "JOURNAL_STREAM"]

const fail = (message: string) => new Netns.NetnsError({ reason: "parse", command: "test", message })

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A temporary directory (mode 0755, owned by `owner` when given), removed when the scope closes. */
const tempDir = (owner?: number): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "kwt-service-"))
      Fs.chmodSync(dir, 0o755)
      if (owner !== undefined) Fs.chownSync(dir, owner, owner)
      return dir
    }),
    (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
  )

/** Fields of /proc/<pid>/status. */
const procStatus = (pid: number): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const line of Fs.readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const at = line.indexOf(":")
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1).trim()
  }
  return out
}

/** Gone, or a zombie waiting for init to reap it (it has finished everything it does). */
const isGone = (pid: number): boolean => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")
  } catch {
    return true
  }
}

const waitUntil = (what: string, check: () => boolean, timeout: Duration.DurationInput = "5 seconds") =>
  Netns.pollUntilSome(Effect.sync(() => (check() ? Option.some(true) : Option.none())), "25 millis").pipe(
    Effect.timeoutFail({ duration: timeout, onTimeout: () => fail(`${what} within ${Duration.format(timeout)}`) })
  )

const sendSignal = (pid: number, signal: NodeJS.Signals) => Effect.sync(() => process.kill(pid, signal))

/** Stops a daemon we started but that is not our child: SIGTERM, then SIGKILL. Never fails. */
const stopPid = (pid: number) =>
  Effect.gen(function*() {
    if (isGone(pid)) return
    yield* Effect.try(() => process.kill(pid, "SIGTERM")).pipe(Effect.ignore)
    const gone = yield* waitUntil(`pid ${pid} exits`, () => isGone(pid), "3 seconds").pipe(Effect.option)
    if (Option.isNone(gone)) yield* Effect.try(() => process.kill(pid, "SIGKILL")).pipe(Effect.ignore)
  })

const readPid = (pidfile: string): Option.Option<number> => {
  try {
    const text = Fs.readFileSync(pidfile, "utf8").trim()
    return /^\d+$/.test(text) ? Option.some(Number(text)) : Option.none()
  } catch {
    return Option.none()
  }
}

/**
 * Runs the daemonizing command (no -d) to completion in `ns`; the daemon it leaves behind (found through
 * `pidfile`) is stopped when the scope closes.
 */
const startDetached = (
  ns: Netns.Namespace,
  args: ReadonlyArray<string>,
  pidfile: string,
  prefix: ReadonlyArray<string> = cleanEnv
) =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const result = yield* Netns.exec(ns, [...prefix, ...Netns.kiwitunCommand, ...args], { timeout: "30 seconds" })
      return { result, pid: readPid(pidfile), output: nonEmptyLines(`${result.stdout}\n${result.stderr}`) }
    }),
    ({ pid }) => Option.match(pid, { onNone: () => Effect.void, onSome: stopPid })
  )

interface Listener {
  /** Every datagram received so far, in order. */
  readonly messages: Effect.Effect<ReadonlyArray<string>>
  /** Waits for a datagram matching `pattern` among those from index `after` on; returns it and its index. */
  readonly waitFor: (
    pattern: RegExp,
    after?: number
  ) => Effect.Effect<{ readonly text: string; readonly index: number }, Netns.NetnsError>
}

const textOf = (line: string): string | undefined => {
  try {
    const value: unknown = JSON.parse(line)
    return typeof value === "object" && value !== null && "text" in value && typeof value.text === "string"
      ? value.text
      : undefined
  } catch {
    return undefined
  }
}

/** A unix datagram socket at `address` (a path, or '@name' in the namespace), receiving until the scope closes. */
const listen = (ns: Netns.Namespace, address: string): Effect.Effect<Listener, Netns.NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const proc = yield* Netns.spawn(ns, [process.execPath, listenerScript, dist, address])
    yield* proc.waitForLine(/^listening$/)
    const messages = Effect.map(proc.stdout, (out) =>
      out.split("\n").map(textOf).filter((t): t is string => t !== undefined))
    const waitFor = (pattern: RegExp, after = 0) =>
      Netns.pollUntilSome(
        Effect.map(messages, (all) => {
          const index = all.findIndex((m, i) => i >= after && pattern.test(m))
          return index < 0 ? Option.none() : Option.some({ text: all[index]!, index })
        }),
        "25 millis"
      ).pipe(
        Effect.timeoutFail({
          duration: "10 seconds",
          onTimeout: () => fail(`no datagram matching ${pattern} on ${address}`)
        }),
        Effect.catchTag("NetnsError", (e) =>
          Effect.flatMap(messages, (all) => Effect.fail(fail(`${e.message}; received:\n${all.join("\n---\n")}`))))
      )
    return { messages, waitFor }
  })

/**
 * A raw client of the control socket: connects, sends `request` (none: leaves at once), then reads the answer, or
 * with `hangUp` closes without reading it. Returns what it read.
 */
const talk = (path: string, request: string | undefined, hangUp = false) =>
  Effect.async<string>((resume) => {
    let text = ""
    const socket = Net.createConnection(path)
    socket.on("error", () => resume(Effect.succeed(text)))
    socket.on("data", (chunk: Buffer) => (text += chunk.toString("utf8")))
    socket.once("close", () => resume(Effect.succeed(text)))
    socket.once("connect", () => {
      if (request === undefined || hangUp) {
        if (request !== undefined) socket.write(request)
        socket.destroy()
      } else socket.end(request)
    })
  }).pipe(Effect.timeout("5 seconds"), Effect.orElseSucceed(() => "(timeout)"))

/** `kiwitun status` (run in the root namespace: a path socket is reachable from anywhere). */
const status = (args: ReadonlyArray<string>) =>
  Netns.run([...cleanEnv, ...Netns.kiwitunCommand, "status", ...args], { timeout: "15 seconds" })

const statusJson = (socket: string): Effect.Effect<StatusReport, Netns.NetnsError> =>
  Effect.flatMap(status(["--json", "--socket", socket]), (r) =>
    r.code === 0
      ? Schema.decodeUnknown(StatusReportJson)(r.stdout).pipe(
        Effect.mapError((e) => fail(`status --json printed ${r.stdout}: ${e.message}`))
      )
      : Effect.fail(fail(`status exited ${r.code}: ${r.stderr}`)))

/** The daemon's own /dev/log: $1 is the directory holding the `log` socket; the command follows. */
const PRIVATE_DEV_LOG = [
  "set -e",
  "dir=$1; shift",
  "mkdir \"$dir/hostdev\"",
  "mount --bind /dev \"$dir/hostdev\"",
  "mount -t tmpfs -o mode=755 tmpfs /dev",
  "for e in \"$dir\"/hostdev/*; do n=${e##*/}; [ \"$n\" = log ] || ln -s \"$e\" \"/dev/$n\"; done",
  "ln -s \"$dir/log\" /dev/log",
  "exec \"$@\""
].join("\n")

/**
 * /dev/net/tun as most distributions ship it (0666; access is decided by CAP_NET_ADMIN), in a private mount
 * namespace: some hosts keep it 0600, which only root could open.
 */
const PUBLIC_TUN = "mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 && exec \"$@\""

const capsOnly = (uid: number) => [
  "setpriv",
  `--reuid=${uid}`,
  `--regid=${uid}`,
  "--clear-groups",
  "--inh-caps=-all,+net_admin,+net_raw",
  "--ambient-caps=+net_admin,+net_raw"
]

const hasUp = (ns: Netns.Namespace, ifname: string) =>
  Effect.map(Netns.link(ns, ifname), Option.match({ onNone: () => false, onSome: (l) => l.flags.includes("UP") }))

const addressesOf = (ns: Netns.Namespace, ifname: string) =>
  Effect.map(Netns.ip(ns, "-o", "addr", "show", "dev", ifname), (r) =>
    [...r.stdout.matchAll(/\binet6? (\S+)/g)].map((m) => m[1]!))

const ARGS = ["-4", "-r", "192.0.2.2", "-i", "ktun0", "--address", "198.51.100.1/30"]

// ---------------------------------------------------------------------------------------------------------------

describeIntegration("running as a service", () => {
  it.scopedLive("daemonizes: returns once the device is up; SIGHUP keeps it; SIGTERM removes all it made", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const dir = yield* tempDir()
      const pidfile = Path.join(dir, "kiwitun.pid")
      const socket = Path.join(dir, "control.sock")
      const args = [...ARGS, "--pidfile", pidfile, "--control-socket", socket]
      const { result, pid, output } = yield* startDetached(ns, args, pidfile)
      // Checked at once, without waiting: the command returned only after the daemon said it was up.
      const up = yield* hasUp(ns, "ktun0")
      const addresses = yield* addressesOf(ns, "ktun0")
      expect(result.code, output.join("\n")).toBe(0)
      expect(output, "the starting command prints nothing on success").toEqual([])
      expect(up).toBe(true)
      expect(addresses).toContain("198.51.100.1/30")
      expect(Option.isSome(pid)).toBe(true)
      const daemon = Option.getOrThrow(pid)

      const stat = Fs.readFileSync(`/proc/${daemon}/stat`, "utf8")
      const [, , , session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
      expect(Number(session), "setsid: it leads its own session").toBe(daemon)
      for (const fd of [0, 1, 2]) expect(Fs.readlinkSync(`/proc/${daemon}/fd/${fd}`)).toBe("/dev/null")
      expect(Fs.existsSync(`/proc/${daemon}/fd/3`), "the readiness pipe is closed").toBe(false)
      expect(Fs.statSync(socket).mode & 0o777).toBe(0o600)
      expect((yield* statusJson(socket)).pid).toBe(daemon)

      // Clients that vanish, or ask nonsense, are no concern of the tunnel's.
      const vanished = yield* Effect.all([talk(socket, undefined), talk(socket, "status\n", true), talk(socket, "x\n")])
      expect(vanished[2]).toMatch(/"error":"unknown request 'x'/)
      expect(isGone(daemon)).toBe(false)

      yield* sendSignal(daemon, "SIGHUP")
      yield* Effect.sleep("300 millis")
      expect(isGone(daemon), "SIGHUP re-resolves, it does not stop the daemon").toBe(false)
      expect((yield* statusJson(socket)).ifname).toBe("ktun0")

      yield* sendSignal(daemon, "SIGTERM")
      yield* waitUntil("the daemon exits after SIGTERM", () => isGone(daemon), "3 seconds")
      expect(yield* Netns.link(ns, "ktun0")).toEqual(Option.none())
      expect(Fs.existsSync(pidfile), "pidfile removed").toBe(false)
      expect(Fs.existsSync(socket), "control socket removed").toBe(false)
    }), 60_000)

  it.scopedLive("a daemon that cannot start: the command prints its error, exits non-zero, leaves nothing", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const dir = yield* tempDir()
      const first = yield* Netns.kiwitun(ns, [...ARGS, "-d", "--control-socket", Path.join(dir, "first.sock")], {
        command: [...cleanEnv, ...Netns.kiwitunCommand]
      })
      const pidfile = Path.join(dir, "second.pid")
      const args = [...ARGS, "--pidfile", pidfile, "--control-socket", Path.join(dir, "second.sock")]
      const { result, output } = yield* startDetached(ns, args, pidfile)
      expect(result.code, output.join("\n")).toBe(1)
      expect(output).toHaveLength(1)
      expect(output[0]).toMatch(/^kiwitun: .*ktun0.*EBUSY/)
      expect(Fs.existsSync(pidfile)).toBe(false)
      expect(Fs.existsSync(Path.join(dir, "second.sock"))).toBe(false)
      const pids = yield* Netns.runOk(["ip", "netns", "pids", ns.name])
      expect(nonEmptyLines(pids.stdout).map(Number), "only the first daemon runs in the namespace").toEqual([first.pid])
    }), 60_000)

  it.scopedLive("detached: syslog (facility daemon, tag, pid); MAINPID, READY=1, STOPPING=1 to the manager", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const dir = yield* tempDir()
      const syslog = yield* listen(ns, Path.join(dir, "log"))
      const notify = yield* listen(ns, Path.join(dir, "notify"))
      const pidfile = Path.join(dir, "kiwitun.pid")
      const prefix = [
        ...cleanEnv,
        `NOTIFY_SOCKET=${Path.join(dir, "notify")}`,
        "unshare",
        "--mount",
        "--",
        "sh",
        "-c",
        PRIVATE_DEV_LOG,
        "sh",
        dir
      ]
      const args = [...ARGS, "--pidfile", pidfile, "--control-socket", Path.join(dir, "control.sock")]
      const { result, pid, output } = yield* startDetached(ns, args, pidfile, prefix)
      expect(result.code, output.join("\n")).toBe(0)
      const daemon = Option.getOrThrow(pid)

      // <30> = facility daemon (3) * 8 + info (6)
      const header = `^<30>\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d kiwitun\\[${daemon}\\]: `
      yield* syslog.waitFor(new RegExp(`${header}tunnel up .*tunnel=ktun0`))
      const ready = yield* notify.waitFor(/READY=1/)
      expect(ready.text).toBe(
        `MAINPID=${daemon}\nREADY=1\n` +
          `STATUS=ktun0 up, remote 192.0.2.2; ${ready.text.split("; ")[1]?.trimEnd() ?? ""}\n`
      )
      expect(ready.text).toMatch(/tun->net \d+ pkts .*, net->tun \d+ pkts .*, \d+ dropped, \d+ ICMP sent\n$/)

      const before = (yield* syslog.messages).length
      yield* sendSignal(daemon, "SIGUSR1")
      yield* syslog.waitFor(new RegExp(`${header}counters tun_rx=\\d+ encap_packets=\\d+ `), before)

      yield* sendSignal(daemon, "SIGTERM")
      yield* notify.waitFor(/^STOPPING=1\n$/)
      yield* waitUntil("the daemon exits after SIGTERM", () => isGone(daemon), "3 seconds")
      const all = yield* syslog.messages
      expect(all.filter((m) => /counters /.test(m)).length, "counters logged on SIGUSR1 and at exit").toBe(2)
      expect(all.filter((m) => !m.startsWith("<")), "every line has its priority").toEqual([])
      expect(all.filter((m) => m.startsWith("<31>")), "debug lines are filtered at the default level 6").toEqual([])
      expect(Fs.existsSync(pidfile)).toBe(false)
    }), 60_000)

  it.scopedLive("-d under a manager (abstract NOTIFY_SOCKET): READY=1 once up, STATUS=, <N> on stderr, SIGINT", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const dir = yield* tempDir()
      const address = `@kwt-${process.pid}-notify`
      const notify = yield* listen(ns, address)
      const daemon = yield* Netns.kiwitun(ns, [...ARGS, "-d", "--control-socket", Path.join(dir, "control.sock")], {
        command: ["env", "-u", "JOURNAL_STREAM", `NOTIFY_SOCKET=${address}`, ...Netns.kiwitunCommand],
        waitUp: false
      })
      const ready = yield* notify.waitFor(/READY=1/)
      // READY=1 comes after the device is configured: no waiting here.
      expect(yield* hasUp(ns, "ktun0")).toBe(true)
      expect(yield* addressesOf(ns, "ktun0")).toContain("198.51.100.1/30")
      expect(ready.text).toMatch(/^READY=1\nSTATUS=ktun0 up, remote 192\.0\.2\.2; .*\n$/)
      expect(ready.text, "MAINPID only from a detached copy").not.toMatch(/MAINPID/)
      // the journal reads the priority from the <N> prefix and records time, tag and pid itself
      yield* daemon.waitForLine(/^<6>tunnel up .*tunnel=ktun0/)

      // Traffic the daemon cannot deliver (no underlay here) changes the counters: STATUS= follows on SIGUSR1.
      yield* Netns.ping(ns, "198.51.100.2", { count: 2, wait: 1 })
      const mark = yield* daemon.mark
      yield* sendSignal(daemon.pid, "SIGUSR1")
      yield* daemon.waitForLine(/^<6>counters /, { after: mark })
      const update = yield* notify.waitFor(/^STATUS=/, ready.index + 1)
      expect(update.text).toMatch(/^STATUS=ktun0 up, remote 192\.0\.2\.2; .*[1-9]\d* dropped/)
      expect(update.text).not.toBe(ready.text.split("\n")[1] + "\n")

      yield* daemon.signal("SIGINT")
      const exit = yield* daemon.exit.pipe(Effect.timeout("5 seconds"))
      yield* notify.waitFor(/^STOPPING=1\n$/)
      expect(exit.code, (yield* daemon.lines).join("\n")).toBe(0)
      expect(yield* Netns.link(ns, "ktun0")).toEqual(Option.none())
    }), 60_000)

  it.scopedLive("with only CAP_NET_ADMIN and CAP_NET_RAW, not root: traffic, status, clean exit", () =>
    Effect.gen(function*() {
      const hosts = yield* Netns.twoHosts({ startDaemons: false })
      const dir = yield* tempDir(NOBODY)
      const socket = Path.join(dir, "a.sock")
      yield* Netns.kiwitun(hosts.b.ns, [...hosts.b.args, "--control-socket", Path.join(dir, "b.sock")], {
        command: [...cleanEnv, ...Netns.kiwitunCommand]
      })
      const wrap = [...cleanEnv, "unshare", "--mount", "--", "sh", "-c", PUBLIC_TUN, "sh", ...capsOnly(NOBODY)]
      const a = yield* Netns.kiwitun(hosts.a.ns, [...hosts.a.args, "--control-socket", socket], {
        command: [...wrap, ...Netns.kiwitunCommand]
      })
      const st = procStatus(a.pid)
      expect(st["Uid"]).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`)
      expect(st["CapEff"]).toBe("0000000000003000")

      const v4 = yield* Netns.ping(hosts.a.ns, hosts.b.inner4, { count: 3 })
      const v6 = yield* Netns.ping(hosts.a.ns, hosts.b.inner6, { count: 3 })
      expect(v4.received, v4.output).toBe(3)
      expect(v6.received, v6.output).toBe(3)
      const report = yield* statusJson(socket)
      expect(report.uid).toBe(NOBODY)
      expect(report.counters.encapPackets).toBeGreaterThanOrEqual(6)
      expect(report.counters.decapPackets).toBeGreaterThanOrEqual(6)

      yield* a.signal("SIGTERM")
      const exit = yield* a.exit.pipe(Effect.timeout("5 seconds"))
      expect(exit.code, (yield* a.lines).join("\n")).toBe(0)
      expect(yield* Netns.link(hosts.a.ns, "ktun0")).toEqual(Option.none())
      expect(Fs.existsSync(socket)).toBe(false)
    }), 90_000)

  it.scopedLive("--user: keeps only CAP_NET_ADMIN; traffic, status table and JSON; clean exit", () =>
    Effect.gen(function*() {
      const hosts = yield* Netns.twoHosts({ startDaemons: false })
      const dir = yield* tempDir(NOBODY)
      const socket = Path.join(dir, "a.sock")
      const pidfile = Path.join(dir, "a.pid")
      yield* Netns.kiwitun(hosts.b.ns, [...hosts.b.args, "--control-socket", Path.join(dir, "b.sock")], {
        command: [...cleanEnv, ...Netns.kiwitunCommand]
      })
      // 4in4 only, with an IPv6 address too: IPv6 sent into it is dropped and counted (encap_mode_disabled).
      const args = ["-4", "-d", "-r", hosts.b.underlay, "-i", "ktun0", "--address", `${hosts.a.inner4}/30`]
      const a = yield* Netns.kiwitun(hosts.a.ns, [
        ...args,
        "--address",
        `${hosts.a.inner6}/64`,
        "--user",
        "nobody",
        "--pidfile",
        pidfile,
        "--control-socket",
        socket
      ], { command: [...cleanEnv, ...Netns.kiwitunCommand] })
      yield* a.waitForLine(/dropped privileges .*user=nobody/)
      expect(readPid(pidfile)).toEqual(Option.some(a.pid))

      const st = procStatus(a.pid)
      expect(st["Uid"]).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`)
      expect(st["Gid"]).toBe(`${NOBODY}\t${NOBODY}\t${NOBODY}\t${NOBODY}`)
      expect(st["Groups"]).toBe(`${NOBODY}`)
      expect(st["CapEff"]).toBe("0000000000001000") // CAP_NET_ADMIN (12) only
      expect(st["CapPrm"]).toBe("0000000000001000")
      expect(st["CapBnd"]).toBe("0000000000001000")
      expect(st["CapInh"]).toBe("0000000000000000")
      expect(st["CapAmb"]).toBe("0000000000000000")
      expect(st["NoNewPrivs"]).toBe("1")

      const v4 = yield* Netns.ping(hosts.a.ns, hosts.b.inner4, { count: 3 })
      expect(v4.received, v4.output).toBe(3)
      const v6 = yield* Netns.ping(hosts.a.ns, hosts.b.inner6, { count: 2, wait: 1 })
      expect(v6.received).toBe(0)

      const table = yield* status(["--socket", socket])
      const report = yield* statusJson(socket)
      expect(table.code, table.stderr).toBe(0)
      const c = report.counters
      expect(report).toMatchObject({ pid: a.pid, ifname: "ktun0", mode: "4in4", remote: "192.0.2.2", user: "nobody" })
      expect(c.encapPackets).toBeGreaterThanOrEqual(3)
      expect(c.decapPackets).toBe(3)
      expect(c.drops["encap_mode_disabled"]).toBeGreaterThanOrEqual(2)
      const lines = table.stdout.split("\n")
      expect(lines[0]).toBe(`kiwitun ${report.version}, pid ${a.pid}`)
      expect(lines).toContain(`interface   ktun0 (index ${report.ifindex}), 4in4, MTU 1480`)
      expect(lines).toContain("remote      192.0.2.2")
      expect(lines).toContain(`user        nobody (uid ${NOBODY})`)
      const row = (label: string) => lines.find((l) => l.startsWith(label))?.slice(label.length).trim().split(/\s{2,}/)
      expect(row("network -> tun")).toEqual([String(c.netRxPackets), "3", `${c.decapBytes} B`])
      expect(Number(row("tun -> network")?.[1])).toBeGreaterThanOrEqual(3)
      expect(lines.some((l) => /^ {2}encap_mode_disabled +\d+$/.test(l)), table.stdout).toBe(true)
      // memory as the kernel counts it for the process, read just after the report
      const vmRss = Number(/VmRSS:\s+(\d+) kB/.exec(Fs.readFileSync(`/proc/${a.pid}/status`, "utf8"))?.[1]) * 1024
      expect(report.memory.rssBytes / vmRss).toBeGreaterThan(0.8)
      expect(report.memory.rssBytes / vmRss).toBeLessThan(1.25)
      expect(report.memory.heapUsedBytes).toBeGreaterThan(1_000_000)
      expect(report.memory.heapUsedBytes).toBeLessThan(report.memory.rssBytes)
      expect(lines.some((l) => /^memory {6}\d+\.\d MiB resident, \d+\.\d MiB JavaScript heap$/.test(l)), table.stdout)
        .toBe(true)

      yield* a.signal("SIGTERM")
      const exit = yield* a.exit.pipe(Effect.timeout("5 seconds"))
      expect(exit.code, (yield* a.lines).join("\n")).toBe(0)
      expect(yield* Netns.link(hosts.a.ns, "ktun0")).toEqual(Option.none())
      expect(Fs.existsSync(socket), "removed by the unprivileged daemon").toBe(false)
      expect(Fs.existsSync(pidfile)).toBe(false)
    }), 90_000)

  it.scopedLive("refuses an unknown --user, --user without CAP_SETUID, and answers status without a daemon", () =>
    Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const dir = yield* tempDir()
      const run = (argv: ReadonlyArray<string>) =>
        Effect.map(Netns.exec(ns, [...cleanEnv, ...argv], { timeout: "20 seconds" }), (r) => ({
          code: r.code,
          output: nonEmptyLines(`${r.stdout}\n${r.stderr}`)
        }))
      const unknown = yield* run([...Netns.kiwitunCommand, ...ARGS, "-d", "--user", "no-such-user-kwt"])
      expect(unknown.code).toBe(2)
      expect(unknown.output).toEqual(["kiwitun: --user: no such user 'no-such-user-kwt'"])

      const wrap = ["unshare", "--mount", "--", "sh", "-c", PUBLIC_TUN, "sh", ...capsOnly(NOBODY)]
      const noSetuid = yield* run([...wrap, ...Netns.kiwitunCommand, ...ARGS, "-d", "--user", "nobody"])
      expect(noSetuid.code).toBe(1)
      expect(noSetuid.output).toEqual(["kiwitun: --user needs CAP_SETUID and CAP_SETGID (run as root)"])

      const none = Path.join(dir, "none.sock")
      const missing = yield* run([...Netns.kiwitunCommand, "status", "--socket", none])
      expect(missing.code).toBe(1)
      expect(missing.output).toHaveLength(1)
      expect(missing.output[0]).toContain(`${none}: ENOENT`)

      expect((yield* Netns.links(ns)).map((l) => l.ifname)).toEqual(["lo"])
    }), 60_000)
})
