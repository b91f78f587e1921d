/**
 * The soak test, `npm run soak -- [--minutes N]` (as root, with iproute2 and iputils-ping; default 10 minutes,
 * `--minutes 60` for an hour; `--help` lists the knobs):
 *
 * namespaces A and B joined by veth (Netns.twoHosts: 192.0.2.1/24 and 192.0.2.2/24, inner 198.51.100.0/30 and
 * 2001:db8:1::/64). Daemon A runs in dynamic mode (no -r), so every packet it sends goes through its rtnetlink
 * route mirror; daemon B has A as its fixed remote. For the whole run, at the same time:
 * - traffic: TCP transfers with their content checked end to end (Netns.tcpTransfer), A to B and B to A, over
 *   4in4 and 6in4 in turn, and pings over both;
 * - route churn on A every few seconds (`ip -batch`): the routes the traffic uses are replaced with equivalent ones,
 *   and a few hundred other routes (some in table 44) are added, moved to another gateway and deleted in turn;
 * - hostile bursts at both daemons: the decapsulation catalogue of scripts/lib/Hostile.ts (malformed and odd
 *   protocol 4 and 41 packets, each with what must become of it), sent whole from the other namespace by the packet
 *   crafter (scripts/lib/craft.ts, AF_PACKET on the veth, so no sending kernel fixes them); forged outer sources
 *   only at B, whose fixed remote makes them a drop;
 * - every `--sample` seconds: each daemon's RSS (/proc/PID/status), CPU time, counters (its control socket, as
 *   `kiwitun status` reads them) and any new line in its log.
 *
 * The summary gives RSS after warm-up and at the end, its growth and trend, packets forwarded, drops by reason,
 * hostile packets sent against the drops they caused, transfer and ping figures, and every unexpected event: a
 * daemon log line at warning level or above (or not a log line at all), a daemon that exits, a status query that
 * fails, an unclean exit at the end. Targets: RSS growth under `--rss-limit-mib` (5 MiB) after warm-up, no
 * unexpected event, no transfer error, every hostile packet counted under the reason the catalogue names. The RSS
 * growth is that of the floor (the smallest sample) of a window after warm-up against that of a window at the end
 * (Soak.rssFigures): one sample swings by tens of MB with the garbage collector, and so does a median, depending on
 * where the cycles fall; what stays resident after a collection is what a leak raises. Medians and the trend are
 * reported too. Results go to bench/results/soak-<date>.json, written even when the run stops early.
 *
 * Everything created (namespaces, veth, daemons, helpers) belongs to one scope: removed at the end, on failure and
 * on Ctrl-C (runMain interrupts the main fiber, which closes the scope; the summary of what ran so far is still
 * printed and written).
 */
import * as Main from "./lib/Main.js"
import { Console, Data, Deferred, Duration, Effect, Either, Fiber, Option } from "effect"
import { existsSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Hostile from "../scripts/lib/Hostile.js"
import * as Netns from "../scripts/lib/Netns.js"
import * as Control from "../src/Control.js"
import type { StatusReport } from "../src/domain/Status.js"
import * as Proc from "./lib/Proc.js"
import * as Soak from "./lib/Soak.js"
import type { SoakOptions } from "./lib/SoakOptions.js"
import * as SoakOptionsModule from "./lib/SoakOptions.js"
import * as Stats from "./lib/Stats.js"

class SoakError extends Data.TaggedError("SoakError")<{ readonly message: string }> {}

type Counters = StatusReport["counters"]
type DaemonName = "a" | "b"
const DAEMONS: ReadonlyArray<DaemonName> = ["a", "b"]

/** The forged outer source of hostile packets at B: in the veth subnet, put on A's side (as hostile.test.ts does). */
const SPOOFED_SOURCE = "192.0.2.99"
/** UDP port the catalogue's well-formed packets are addressed to (nothing listens: the kernel answers them). */
const HOSTILE_PORT = 9000
/** Hostile packets per second at most while a burst is sent. */
const HOSTILE_RATE = 5_000
/** The gateway bulk routes move to: in the veth subnet, held by nobody, so nothing is ever sent to it. */
const OTHER_GATEWAY = "192.0.2.3"
const TRANSFER_PORT = 5201
const PINGS_PER_RUN = 25
const PING_INTERVAL_S = 0.2
/** Netns keeps the last 20,000 lines of a process's output (its Process.lines contract). */
const KEPT_LINES = 20_000

interface Sample {
  /** Seconds since the traffic started. */
  readonly t: number
  readonly rssKb: number
  readonly hwmKb: number
  readonly cpuTicks: number
  readonly counters: Counters | null
}

interface TransferRecord {
  readonly t: number
  readonly path: string
  readonly ok: boolean
  readonly ms: number
  readonly error?: string
}

interface PingRecord {
  readonly family: 4 | 6
  readonly transmitted: number
  readonly received: number
}

interface Unexpected {
  readonly t: number
  readonly daemon: DaemonName | "-"
  readonly what: string
}

/** What the run learned; filled as it goes, reported even when it stops early. */
interface State {
  readonly startedAt: Date
  began: number
  readonly options: SoakOptions
  setup: Record<string, unknown>
  readonly samples: Record<DaemonName, Array<Sample>>
  baseline: Record<DaemonName, Counters | null>
  final: Record<DaemonName, Counters | null>
  readonly transfers: Array<TransferRecord>
  readonly pings: Array<PingRecord>
  readonly churn: { rounds: number; readonly errors: Array<string> }
  readonly hostile: {
    bursts: number
    /** Frames handed to the crafter's socket, per target. */
    readonly frames: Record<DaemonName, number>
    /** The drops they must cause, reason -> count, per target (Hostile.expectationOf). */
    readonly expected: Record<DaemonName, Record<string, number>>
  }
  readonly unexpected: Array<Unexpected>
  /** The soak itself could not do something it claims to (a churn round, a burst): the run proves less. */
  readonly harnessErrors: Array<string>
  readonly exitCodes: Record<DaemonName, string | null>
  stoppedEarly: string | null
  interrupted: boolean
  /** USER_HZ, the unit of the CPU times in the samples. */
  hz: number
  /** Set by the report: whether every target was met. */
  passed: boolean
  pids: Record<DaemonName, number | null>
  /** Lines each daemon wrote over the run (a steady trickle is fine; a flood is a finding). */
  readonly logLines: Record<DaemonName, number>
}

const newState = (options: SoakOptions): State => ({
  startedAt: new Date(),
  began: Date.now(),
  options,
  setup: {},
  samples: { a: [], b: [] },
  baseline: { a: null, b: null },
  final: { a: null, b: null },
  transfers: [],
  pings: [],
  churn: { rounds: 0, errors: [] },
  hostile: { bursts: 0, frames: { a: 0, b: 0 }, expected: { a: {}, b: {} } },
  unexpected: [],
  harnessErrors: [],
  exitCodes: { a: null, b: null },
  stoppedEarly: null,
  interrupted: false,
  hz: 100,
  passed: false,
  pids: { a: null, b: null },
  logLines: { a: 0, b: 0 }
})

const elapsed = (state: State) => Math.round((Date.now() - state.began) / 100) / 10

const checkTools = Effect.gen(function*() {
  const prerequisites = yield* Netns.checkPrerequisites
  const missing = [...prerequisites.missing]
  for (const file of [Path.join(Netns.repoRoot, "dist", "src", "main.js"), Netns.tcpPeerScript, Netns.craftScript]) {
    if (!existsSync(file)) missing.push(`${Path.relative(Netns.repoRoot, file)} missing (npm run build)`)
  }
  if (missing.length > 0) return yield* new SoakError({ message: `cannot run the soak: ${missing.join("; ")}` })
})

const firstLine = (argv: ReadonlyArray<string>) =>
  Netns.run(argv, { timeout: "5 seconds" }).pipe(
    Effect.map((r) => (r.code === 0 ? r.stdout.split("\n")[0]?.trim() ?? "" : "")),
    Effect.orElseSucceed(() => "")
  )

/** The daemon's arguments without `-r PEER`: dynamic mode. */
const withoutRemote = (args: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "-r" || args[i] === "--remote") i++
    else out.push(args[i]!)
  }
  return out
}

const mib = (kb: number) => kb / 1024

const program = (opts: SoakOptions, state: State) =>
  Effect.gen(function*() {
    yield* checkTools
    state.hz = yield* Proc.clockTicksPerSecond
    yield* Console.log(
      `kiwitun soak, ${state.startedAt.toISOString()}: ${opts.minutes} min, warm-up ${opts.warmupMinutes} min, ` +
        `samples every ${opts.sampleSeconds} s, churn every ${opts.churnSeconds} s ` +
        `(${opts.churnRoutes4} IPv4 + ${opts.churnRoutes6} IPv6 routes), hostile bursts every ${opts.hostileSeconds} s`
    )

    // --- set-up: A in dynamic mode, B with A as its fixed remote ---
    const { a, b } = yield* Netns.twoHosts({ startDaemons: false, extraArgs: opts.daemonArgs })
    const argsA = [...withoutRemote(a.args), "--control-socket", Netns.controlSocketOf(a.ns)]
    const argsB = [...b.args, "--control-socket", Netns.controlSocketOf(b.ns)]
    const [daemonA, daemonB] = yield* Effect.all([Netns.kiwitun(a.ns, argsA), Netns.kiwitun(b.ns, argsB)], {
      concurrency: 2
    })
    const daemons: Record<DaemonName, Netns.Process> = { a: daemonA, b: daemonB }
    const sockets: Record<DaemonName, string> = { a: Netns.controlSocketOf(a.ns), b: Netns.controlSocketOf(b.ns) }
    state.pids = { a: daemonA.pid, b: daemonB.pid }
    const plan: Soak.ChurnPlan = {
      ifname: a.ifname,
      gateway: b.underlay,
      otherGateway: OTHER_GATEWAY,
      live4: b.inner4,
      live6: b.inner6,
      routes4: opts.churnRoutes4,
      routes6: opts.churnRoutes6
    }
    state.setup = {
      namespaces: { a: a.ns.name, b: b.ns.name },
      daemonArgs: { a: argsA, b: argsB },
      churn: plan,
      machine: {
        cores: Os.cpus().length,
        cpu: Os.cpus()[0]?.model ?? "unknown",
        kernel: Os.release(),
        node: process.version,
        commit: yield* firstLine(["git", "-C", Netns.repoRoot, "describe", "--always", "--dirty"])
      }
    }
    yield* Console.log(`namespaces ${a.ns.name} / ${b.ns.name}; daemons pid ${daemonA.pid} / ${daemonB.pid}`)
    yield* Console.log(`  A (dynamic): kiwitun ${argsA.join(" ")}`)
    yield* Console.log(`  B:           kiwitun ${argsB.join(" ")}`)

    const churnRound = (round: number) =>
      Netns.run(["ip", "-n", a.ns.name, "-force", "-batch", "-"], {
        input: Soak.churnBatch(plan, round),
        timeout: "30 seconds"
      }).pipe(
        Effect.flatMap((r) =>
          r.code === 0 ? Effect.void : Effect.fail(
            new SoakError({
              message: `churn round ${round}: ip -batch exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`
            })
          )
        )
      )
    // Round 0 puts the routes the traffic needs in place (A has no other way to reach B's inner addresses).
    yield* churnRound(0)
    for (const [from, target] of [[a.ns, b.inner4], [a.ns, b.inner6], [b.ns, a.inner4], [b.ns, a.inner6]] as const) {
      const r = yield* Netns.ping(from, target, { count: 3, interval: 0.2, wait: 2 })
      if (r.received === 0) return yield* new SoakError({ message: `no reply from ${target}:\n${r.output}` })
    }
    for (const name of DAEMONS) {
      state.baseline[name] = (yield* Control.query(sockets[name]).pipe(
        Effect.mapError((e) => new SoakError({ message: `status of daemon ${name.toUpperCase()}: ${e.message}` }))
      )).counters
    }

    // The catalogue aimed at each daemon from the other side. A (dynamic mode) accepts any outer source, so a forged
    // one would be delivered there rather than dropped: those items go to B only.
    const macOf = (ns: Netns.Namespace) =>
      Effect.map(Netns.execOk(ns, ["cat", "/sys/class/net/veth0/address"]), (r) => r.stdout.trim())
    yield* Netns.ip(a.ns, "address", "add", `${SPOOFED_SOURCE}/24`, "dev", "veth0")
    const targets = {
      a: {
        from: b.ns,
        mac: yield* macOf(a.ns),
        items: Hostile.decapCatalogue({
          local: a.underlay,
          remote: b.underlay,
          spoof: SPOOFED_SOURCE,
          innerSrc4: b.inner4,
          innerDst4: a.inner4,
          innerSrc6: b.inner6,
          innerDst6: a.inner6,
          port: HOSTILE_PORT
        }).filter((item) => !item.name.startsWith("spoofed-source"))
      },
      b: {
        from: a.ns,
        mac: yield* macOf(b.ns),
        items: Hostile.decapCatalogue({
          local: b.underlay,
          remote: a.underlay,
          spoof: SPOOFED_SOURCE,
          innerSrc4: a.inner4,
          innerDst4: b.inner4,
          innerSrc6: a.inner6,
          innerDst6: b.inner6,
          port: HOSTILE_PORT
        })
      }
    } as const
    state.setup = { ...state.setup, hostileItems: { a: targets.a.items.length, b: targets.b.items.length } }

    // --- the run ---
    state.began = Date.now()
    const stop = yield* Deferred.make<void>()
    const scanned: Record<DaemonName, number> = { a: 0, b: 0 }
    const gone = new Set<DaemonName>()

    const unexpected = (daemon: DaemonName | "-", what: string) =>
      Effect.sync(() => state.unexpected.push({ t: elapsed(state), daemon, what })).pipe(
        Effect.zipRight(
          Console.error(`  [${elapsed(state)} s] unexpected${daemon === "-" ? "" : ` (${daemon})`}: ${what}`)
        )
      )

    /** New lines of a daemon's output since the last scan; every line not at info or debug level is unexpected. */
    const scanLogs = (name: DaemonName) =>
      Effect.gen(function*() {
        const proc = daemons[name]
        const mark = yield* proc.mark
        const lines = yield* proc.lines
        const dropped = Math.max(0, mark - KEPT_LINES)
        const fresh = lines.slice(Math.max(0, scanned[name] - dropped), mark - dropped)
        scanned[name] = mark
        state.logLines[name] = mark
        for (const line of fresh) {
          if (Soak.classifyLine(line) === "unexpected") yield* unexpected(name, `log: ${line}`)
        }
      })

    const sampleOnce = Effect.gen(function*() {
      for (const name of DAEMONS) {
        const proc = daemons[name]
        yield* scanLogs(name)
        const exited = yield* proc.exited
        if (Option.isSome(exited)) {
          if (gone.has(name)) continue
          gone.add(name)
          yield* unexpected(name, `daemon exited (code ${exited.value.code}, signal ${exited.value.signal})`)
          state.stoppedEarly ??= `daemon ${name.toUpperCase()} exited`
          yield* Deferred.succeed(stop, undefined)
          continue
        }
        const memory = yield* Proc.memory(proc.pid).pipe(Effect.option)
        const ticks = yield* Proc.cpuTicks(proc.pid).pipe(Effect.orElseSucceed(() => Number.NaN))
        const report = yield* Control.query(sockets[name]).pipe(
          Effect.tapError((e) => unexpected(name, `status query failed: ${e.message}`)),
          Effect.option
        )
        if (Option.isSome(memory)) {
          state.samples[name].push({
            t: elapsed(state),
            rssKb: memory.value.rssKb,
            hwmKb: memory.value.hwmKb,
            cpuTicks: ticks,
            counters: Option.isSome(report) ? report.value.counters : null
          })
        }
      }
    })

    const progressEvery = Math.max(1, Math.round(60 / opts.sampleSeconds))
    let sampleNo = 0
    const sampler = sampleOnce.pipe(
      Effect.tap(() => {
        if (sampleNo++ % progressEvery !== 0) return Effect.void
        const rss = DAEMONS.map((n) => {
          const last = state.samples[n].at(-1)
          return `${n.toUpperCase()} ${last === undefined ? "-" : Stats.fmt(mib(last.rssKb))} MiB`
        })
        const failed = state.transfers.filter((t) => !t.ok).length
        return Console.log(
          `[${Math.round(elapsed(state))} s] RSS ${rss.join(", ")}; transfers ${state.transfers.length} ` +
            `(${failed} failed); churn rounds ${state.churn.rounds}; hostile bursts ${state.hostile.bursts}; ` +
            `unexpected ${state.unexpected.length}`
        )
      }),
      Effect.zipRight(Effect.sleep(Duration.seconds(opts.sampleSeconds))),
      Effect.forever
    )

    const paths = [
      { name: "A->B 4in4", from: a.ns, to: b.ns, host: b.inner4 },
      { name: "B->A 6in4", from: b.ns, to: a.ns, host: a.inner6 },
      { name: "A->B 6in4", from: a.ns, to: b.ns, host: b.inner6 },
      { name: "B->A 4in4", from: b.ns, to: a.ns, host: a.inner4 }
    ] as const
    const bytes = opts.transferMiB * 1024 * 1024
    let transferNo = 0
    const traffic = Effect.suspend(() => {
      const path = paths[transferNo++ % paths.length]!
      const t = elapsed(state)
      return Netns.tcpTransfer({
        from: path.from,
        to: path.to,
        host: path.host,
        port: TRANSFER_PORT,
        bytes,
        timeout: "60 seconds"
      }).pipe(
        Effect.flatMap((r) => {
          const same = r.sent.bytes === bytes && r.received.bytes === bytes && r.sent.sha256 === r.received.sha256
          const record: TransferRecord = same
            ? { t, path: path.name, ok: true, ms: r.durationMs }
            : {
              t,
              path: path.name,
              ok: false,
              ms: r.durationMs,
              error: `content differs: sent ${r.sent.bytes} B ${r.sent.sha256.slice(0, 12)}, received ` +
                `${r.received.bytes} B ${r.received.sha256.slice(0, 12)}`
            }
          return Effect.sync(() => state.transfers.push(record))
        }),
        Effect.catchAll((e) =>
          Effect.sync(() =>
            state.transfers.push({ t, path: path.name, ok: false, ms: Number.NaN, error: e.message.slice(0, 500) })
          ).pipe(Effect.zipRight(Console.error(`  [${t} s] transfer ${path.name} failed: ${e.message.slice(0, 300)}`)))
        ),
        Effect.zipRight(opts.transferPauseMs > 0 ? Effect.sleep(Duration.millis(opts.transferPauseMs)) : Effect.void)
      )
    }).pipe(Effect.forever)

    const pinger = (family: 4 | 6) =>
      Netns.ping(family === 4 ? a.ns : b.ns, family === 4 ? b.inner4 : a.inner6, {
        count: PINGS_PER_RUN,
        interval: PING_INTERVAL_S,
        wait: 1,
        timeout: "60 seconds"
      }).pipe(
        Effect.flatMap((r) =>
          Effect.sync(() => state.pings.push({ family, transmitted: r.transmitted, received: r.received }))
        ),
        Effect.catchAll((e) => Effect.sync(() => state.harnessErrors.push(`ping: ${e.message.slice(0, 300)}`))),
        Effect.forever
      )

    let round = 1
    const churn = Effect.sleep(Duration.seconds(opts.churnSeconds)).pipe(
      Effect.zipRight(Effect.suspend(() => churnRound(round++))),
      Effect.tap(() => Effect.sync(() => state.churn.rounds++)),
      Effect.catchAll((e) => Effect.sync(() => state.churn.errors.push(e.message))),
      Effect.forever
    )

    /** One burst at `target`'s daemon: the catalogue, `--hostile-rounds` times over. */
    const burstAt = (target: DaemonName) => {
      const t = targets[target]
      return Netns.craft(t.from, {
        via: { kind: "packet", ifname: "veth0", dstMac: t.mac },
        rounds: opts.hostileRounds,
        rate: HOSTILE_RATE,
        items: Hostile.sendItems(t.items)
      }).pipe(
        Effect.flatMap((report) =>
          Effect.sync(() => {
            const expected = Hostile.expectationOf(t.items, report)
            state.hostile.frames[target] += expected.frames
            Soak.addInto(state.hostile.expected[target], expected.drops)
            const refused = Object.entries(expected.refused)
            if (refused.length > 0) {
              state.harnessErrors.push(`hostile burst at ${target}: sends refused ${JSON.stringify(refused)}`)
            }
          })
        )
      )
    }
    const hostile = Effect.sleep(Duration.seconds(Math.min(opts.hostileSeconds, 5))).pipe(
      Effect.zipRight(Effect.all([burstAt("a"), burstAt("b")], { concurrency: 2, discard: true })),
      Effect.tap(() => Effect.sync(() => state.hostile.bursts++)),
      Effect.catchAll((e) => Effect.sync(() => state.harnessErrors.push(e.message))),
      Effect.zipRight(Effect.sleep(Duration.seconds(Math.max(0, opts.hostileSeconds - 5)))),
      Effect.forever
    )

    const load = yield* Effect.all([traffic, pinger(4), pinger(6), churn, hostile].map((f) => Effect.forkScoped(f)))
    const sampling = yield* Effect.forkScoped(sampler)
    yield* Deferred.await(stop).pipe(Effect.timeout(Duration.minutes(opts.minutes)), Effect.ignore)

    // --- the end: let the last packets drain, read the final figures, then stop the daemons and check how ---
    yield* Fiber.interruptAll(load)
    yield* Effect.sleep("2 seconds")
    yield* Fiber.interrupt(sampling)
    yield* sampleOnce
    for (const name of DAEMONS) state.final[name] = state.samples[name].at(-1)?.counters ?? null
    for (const name of DAEMONS) {
      const proc = daemons[name]
      if (Option.isSome(yield* proc.exited)) continue
      yield* Effect.ignore(proc.signal("SIGTERM"))
      const exit = yield* proc.exit.pipe(Effect.timeout("10 seconds"), Effect.option)
      yield* scanLogs(name)
      if (Option.isNone(exit)) yield* unexpected(name, "did not exit within 10 s of SIGTERM")
      else {
        state.exitCodes[name] = `${exit.value.code ?? exit.value.signal}`
        if (exit.value.code !== 0) yield* unexpected(name, `exited with ${state.exitCodes[name]} on SIGTERM`)
      }
    }
  })

// ---------------------------------------------------------------------------------------------------------------
// The report

const summarize = (state: State) => {
  const opts = state.options
  const hz = state.hz
  const daemons = Object.fromEntries(DAEMONS.map((name) => {
    const samples = state.samples[name]
    const rss = Soak.rssFigures(samples.map((s) => ({ t: s.t, rssKb: s.rssKb })), opts.warmupMinutes * 60)
    const first = samples[0]
    const last = samples.at(-1)
    const cpu = first !== undefined && last !== undefined && last.t > first.t
      ? Proc.cpuPercent(last.cpuTicks - first.cpuTicks, hz, (last.t - first.t) * 1000)
      : Number.NaN
    const base = state.baseline[name]
    const fin = state.final[name] ?? last?.counters ?? null
    const forwarded = fin === null || base === null ? null : {
      encapPackets: fin.encapPackets - base.encapPackets,
      encapBytes: fin.encapBytes - base.encapBytes,
      decapPackets: fin.decapPackets - base.decapPackets,
      decapBytes: fin.decapBytes - base.decapBytes,
      icmpSent: fin.icmpSent - base.icmpSent
    }
    const drops = fin === null || base === null ? {} : Soak.delta(base.drops, fin.drops)
    const expected = state.hostile.expected[name]
    return [name, {
      pid: state.pids[name],
      logLines: state.logLines[name],
      rss: {
        warmupKb: rss.warmup?.rssKb ?? null,
        warmupAtS: rss.warmup?.t ?? null,
        endKb: rss.end?.rssKb ?? null,
        warmupMedianKb: rss.warmupMedianKb,
        endMedianKb: rss.endMedianKb,
        windowSeconds: rss.windowSeconds,
        growthKb: rss.growthKb,
        warmupFloorKb: rss.warmupFloorKb,
        endFloorKb: rss.endFloorKb,
        floorGrowthKb: rss.floorGrowthKb,
        maxKb: rss.maxKb,
        peakKb: last?.hwmKb ?? null,
        slopeKbPerHour: rss.slopeKbPerHour
      },
      cpuPercent: cpu,
      forwarded,
      drops,
      hostileFrames: state.hostile.frames[name],
      hostileChecks: Soak.hostileChecks(expected, drops),
      exit: state.exitCodes[name]
    }]
  })) as Record<DaemonName, {
    readonly pid: number | null
    readonly logLines: number
    readonly rss: {
      readonly warmupKb: number | null
      readonly warmupAtS: number | null
      readonly endKb: number | null
      readonly warmupMedianKb: number
      readonly endMedianKb: number
      readonly windowSeconds: number
      readonly growthKb: number
      readonly warmupFloorKb: number
      readonly endFloorKb: number
      readonly floorGrowthKb: number
      readonly maxKb: number
      readonly peakKb: number | null
      readonly slopeKbPerHour: number
    }
    readonly cpuPercent: number
    readonly forwarded: Record<string, number> | null
    readonly drops: Record<string, number>
    readonly hostileFrames: number
    readonly hostileChecks: ReadonlyArray<Soak.HostileCheck>
    readonly exit: string | null
  }>
  const okTransfers = state.transfers.filter((t) => t.ok)
  const transferErrors = state.transfers.filter((t) => !t.ok)
  const mbps = okTransfers.map((t) => (opts.transferMiB * 8 * 1.048576) / (t.ms / 1000))
  const pings = ([4, 6] as const).map((family) => {
    const runs = state.pings.filter((p) => p.family === family)
    const transmitted = runs.reduce((s, p) => s + p.transmitted, 0)
    const received = runs.reduce((s, p) => s + p.received, 0)
    const lostPercent = transmitted === 0 ? Number.NaN : 100 * (1 - received / transmitted)
    return { family, transmitted, received, lostPercent }
  })
  const hostileMismatches = DAEMONS.flatMap((name) =>
    daemons[name].hostileChecks.filter((c) => c.counted !== c.sent).map((c) => ({ daemon: name, ...c }))
  )
  const rssOk = DAEMONS.every((name) => daemons[name].rss.floorGrowthKb < opts.rssLimitMiB * 1024)
  const verdict = {
    rssGrowthUnderLimit: rssOk,
    noUnexpectedEvents: state.unexpected.length === 0,
    noTransferErrors: transferErrors.length === 0 && okTransfers.length > 0,
    hostileAccountedFor: hostileMismatches.length === 0 && state.hostile.bursts > 0,
    noHarnessErrors: state.harnessErrors.length === 0 && state.churn.errors.length === 0,
    ranToTheEnd: state.stoppedEarly === null && !state.interrupted
  }
  return { daemons, okTransfers, transferErrors, mbps, pings, hostileMismatches, verdict }
}

const report = (state: State) =>
  Effect.gen(function*() {
    const opts = state.options
    const s = summarize(state)
    const fmtMib = (kb: number | null) => (kb === null ? "-" : Stats.fmt(mib(kb)))
    const row = (label: string, f: (name: DaemonName) => string) => [label, ...DAEMONS.map(f)]
    const durationS = elapsed(state)
    yield* Console.log("")
    yield* Console.log(
      `Soak summary: ${Stats.fmt(durationS / 60)} min of ${opts.minutes}` +
        (state.interrupted ? " (interrupted)" : state.stoppedEarly !== null ? ` (stopped: ${state.stoppedEarly})` : "")
    )
    const d = s.daemons
    const window = Stats.fmt(Math.min(...DAEMONS.map((n) => d[n].rss.windowSeconds)))
    const allDrops = [...new Set(DAEMONS.flatMap((n) => Object.keys(d[n].drops)))].sort()
    yield* Console.log(Stats.table(["", "A (dynamic, 192.0.2.1)", "B (fixed remote, 192.0.2.2)"], [
      row("RSS first sample after warm-up (MiB)", (n) =>
        `${fmtMib(d[n].rss.warmupKb)} at ${d[n].rss.warmupAtS ?? "-"} s`),
      row("RSS last sample (MiB)", (n) => fmtMib(d[n].rss.endKb)),
      row(`RSS median, first ${window} s after warm-up (MiB)`, (n) => Stats.fmt(mib(d[n].rss.warmupMedianKb))),
      row(`RSS median, last ${window} s (MiB)`, (n) => Stats.fmt(mib(d[n].rss.endMedianKb))),
      row("RSS median growth (MiB)", (n) => Stats.fmt(mib(d[n].rss.growthKb))),
      row(`RSS floor, first ${window} s after warm-up (MiB)`, (n) => Stats.fmt(mib(d[n].rss.warmupFloorKb))),
      row(`RSS floor, last ${window} s (MiB)`, (n) => Stats.fmt(mib(d[n].rss.endFloorKb))),
      row("RSS growth after warm-up: floor (MiB)", (n) => Stats.fmt(mib(d[n].rss.floorGrowthKb))),
      row("RSS trend after warm-up (MiB/h)", (n) => Stats.fmt(mib(d[n].rss.slopeKbPerHour))),
      row("RSS max sampled / peak (MiB)", (n) => `${fmtMib(d[n].rss.maxKb)} / ${fmtMib(d[n].rss.peakKb)}`),
      row("CPU over the run (% core)", (n) => Stats.fmt(d[n].cpuPercent)),
      row("packets tun -> network", (n) => String(d[n].forwarded?.["encapPackets"] ?? "-")),
      row("packets network -> tun", (n) => String(d[n].forwarded?.["decapPackets"] ?? "-")),
      row("ICMP errors sent", (n) => String(d[n].forwarded?.["icmpSent"] ?? "-")),
      ...allDrops.map((reason) => row(`drops ${reason}`, (n) => String(d[n].drops[reason] ?? 0))),
      row("hostile packets sent", (n) => String(d[n].hostileFrames)),
      row("log lines written", (n) => String(d[n].logLines)),
      row("exit on SIGTERM", (n) => d[n].exit ?? "-")
    ]))
    const gbit = Stats.summarize(s.mbps.map((m) => m / 1000))
    yield* Console.log(
      `transfers: ${s.okTransfers.length} ok (${opts.transferMiB} MiB each, content checked; ` +
        `${Stats.fmtSummary(gbit)} Gbit/s), ${s.transferErrors.length} failed`
    )
    for (const t of s.transferErrors.slice(0, 10)) yield* Console.log(`  at ${t.t} s ${t.path}: ${t.error ?? ""}`)
    yield* Console.log(
      `pings: ${
        s.pings.map((p) => `IPv${p.family} ${p.received}/${p.transmitted} (${Stats.fmt(p.lostPercent)}% lost)`).join(
          ", "
        )
      }`
    )
    yield* Console.log(
      `route churn: ${state.churn.rounds} rounds of ${opts.churnRoutes4 + opts.churnRoutes6 + 2} routes, ` +
        `${state.churn.errors.length} failed; hostile bursts: ${state.hostile.bursts}`
    )
    for (const m of s.hostileMismatches) {
      yield* Console.log(`  hostile ${m.daemon.toUpperCase()} ${m.reason}: sent ${m.sent}, counted ${m.counted}`)
    }
    yield* Console.log(`unexpected events: ${state.unexpected.length}`)
    for (const u of state.unexpected.slice(0, 20)) yield* Console.log(`  at ${u.t} s (${u.daemon}): ${u.what}`)
    for (const e of [...state.harnessErrors, ...state.churn.errors].slice(0, 10)) yield* Console.log(`  harness: ${e}`)
    const passed = Object.values(s.verdict).every((v) => v)
    yield* Console.log(
      `targets: RSS floor growth < ${opts.rssLimitMiB} MiB: ${s.verdict.rssGrowthUnderLimit ? "yes" : "NO"}; ` +
        `no unexpected events: ${s.verdict.noUnexpectedEvents ? "yes" : "NO"}; ` +
        `no transfer errors: ${s.verdict.noTransferErrors ? "yes" : "NO"}; ` +
        `hostile packets all counted: ${s.verdict.hostileAccountedFor ? "yes" : "NO"} => ${passed ? "PASS" : "FAIL"}`
    )

    const json = {
      date: state.startedAt.toISOString(),
      options: opts,
      durationSeconds: durationS,
      stoppedEarly: state.stoppedEarly,
      interrupted: state.interrupted,
      setup: state.setup,
      verdict: { ...s.verdict, passed },
      daemons: s.daemons,
      transfers: {
        ok: s.okTransfers.length,
        failed: s.transferErrors.length,
        gbit,
        errors: s.transferErrors
      },
      pings: s.pings,
      churn: state.churn,
      hostile: { bursts: state.hostile.bursts, rounds: opts.hostileRounds, mismatches: s.hostileMismatches },
      unexpected: state.unexpected,
      harnessErrors: state.harnessErrors,
      samples: state.samples
    }
    const dir = Path.join(Netns.repoRoot, "bench", "results")
    const file = Path.join(dir, `soak-${Stats.stamp(state.startedAt)}.json`)
    const text = `${JSON.stringify(json, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`
    yield* Effect.tryPromise({
      try: async () => {
        await mkdir(dir, { recursive: true })
        await writeFile(file, text)
      },
      catch: (cause) => new SoakError({ message: `cannot write ${file}: ${String(cause)}` })
    })
    yield* Console.log(`wrote ${Path.relative(process.cwd(), file)}`)
    return passed
  })

const main = Effect.gen(function*() {
  const parsed = SoakOptionsModule.parse(process.argv.slice(2))
  if (Either.isLeft(parsed)) {
    if (parsed.left === "help") return yield* Console.log(SoakOptionsModule.usage)
    return yield* new SoakError({ message: `${parsed.left}\n${SoakOptionsModule.usage}` })
  }
  const state = newState(parsed.right)
  // The report covers what ran, however it ended: it is a finalizer, so Ctrl-C still prints and writes it (after the
  // scope has removed everything). A set-up failure before the first sample has nothing to report.
  const reportOnce = Effect.suspend(() =>
    state.samples.a.length === 0 && state.samples.b.length === 0 ? Effect.void : report(state).pipe(
      Effect.flatMap((passed) =>
        Effect.sync(() => {
          state.passed = passed
        })
      ),
      Effect.catchAll((e) => Console.error(`soak: ${e.message}`))
    )
  )
  yield* Effect.scoped(program(parsed.right, state)).pipe(
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        state.interrupted = true
      }).pipe(Effect.zipRight(Console.error("\ninterrupted: removed the namespaces and stopped every process")))
    ),
    Effect.ensuring(reportOnce)
  )
  if (!state.passed) return yield* new SoakError({ message: "soak targets missed (see the summary)" })
})

Main.run("soak", main)
