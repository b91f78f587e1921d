/**
 * The tunnel benchmark, `npm run bench` (as root, with iproute2, iputils-ping and iperf3):
 *
 * two namespaces joined by veth (192.0.2.1/24, 192.0.2.2/24), a kiwitun daemon on each carrying 4in4
 * (198.51.100.0/30) and 6in4 (2001:db8:1::/64) over one TUN device, and, in one run, the same figures for the bare
 * veth, 4in4 and 6in4: TCP goodput (one and four streams), 64-byte UDP datagrams delivered per second, ping RTT
 * (median, p99, and the daemons' run time per ping, exact from the scheduler's accounting: what a wake-up costs with
 * cold caches), a ping flood (average RTT, and the daemons' CPU per ping: with one packet in flight, each wake-up
 * carries one packet, so this is what the data path costs per chunk rather than per packet), the daemons' CPU use
 * during the single-stream TCP test, their memory and their idle CPU use.
 * The C reference tunnel (bench/reference/ctun.c: one thread per socket, one syscall per packet, default socket
 * buffers; built with cc) runs in a second pair of namespaces with the same addresses and is measured the same way as
 * "C-4in4" and "C-6in4" (`--no-reference` skips it). It needs its own namespaces: a raw socket receives every packet
 * of its protocol in its namespace, so two tunnel implementations side by side would each see the other's packets.
 * Every figure is measured `--repetitions` times, the variants interleaved so that load from elsewhere on the
 * machine spreads over all of them; the table shows the median, the spread (min-max) and each tunnel figure as a
 * ratio to the bare veth of the same run. Results go to bench/results/latest.json and a dated copy.
 *
 * Everything created (namespaces, veth, daemons, iperf3) belongs to one scope: it is removed at the end, on
 * failure and on Ctrl-C (runMain interrupts the main fiber, which closes the scope).
 */
import * as Main from "./lib/Main.js"
import { Console, Data, Duration, Effect, Either, Option } from "effect"
import { existsSync } from "node:fs"
import { mkdir, readFile, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import * as Netns from "../scripts/lib/Netns.js"
import * as Iperf from "./lib/Iperf.js"
import type { BenchOptions } from "./lib/Options.js"
import * as Options from "./lib/Options.js"
import * as Proc from "./lib/Proc.js"
import * as RateSearch from "./lib/RateSearch.js"
import * as Reference from "./lib/Reference.js"
import type { Summary } from "./lib/Stats.js"
import * as Stats from "./lib/Stats.js"

class BenchError extends Data.TaggedError("BenchError")<{ readonly message: string }> {}

const KIWITUN_VARIANTS = ["bare", "4in4", "6in4"] as const
const REFERENCE_VARIANTS = ["C-4in4", "C-6in4"] as const
const VARIANTS = [...KIWITUN_VARIANTS, ...REFERENCE_VARIANTS] as const
type Variant = (typeof VARIANTS)[number]

/** Two hosts of one tunnel implementation, each with its daemon. */
interface Pair {
  readonly a: Netns.TunnelHost
  readonly b: Netns.TunnelHost
  readonly daemons: readonly [Netns.Process, Netns.Process]
  readonly pids: readonly [number, number]
}

/** What a variant is measured over: the pair whose daemons carry it, and the address on B that A talks to. */
interface Route {
  readonly variant: Variant
  readonly pair: Pair
  readonly target: string
}

interface FigureSpec {
  readonly key: string
  readonly label: string
  readonly unit: string
  /** How the ratio to the bare veth reads: a share of it (throughput) or a multiple (latency); none for CPU. */
  readonly ratio: "share" | "multiple" | "none"
  readonly tunnelOnly: boolean
}

/**
 * The loss-bounded UDP rate (RFC 2544 throughput, bench/lib/RateSearch): an unpaced trial first, then paced trials
 * between nothing and what the unpaced sender reached (a paced iperf3 sends at most about two thirds of that, so
 * only the unpaced trial can show the bare veth's full rate), with 4 MiB socket buffers at both ends so that the
 * receiving iperf3's own socket buffer (208 KiB by default, overflowing whenever the receiver is not scheduled for a
 * few milliseconds) is not what is measured. The unpaced figure above keeps the default buffers.
 */
const RATE_MAX_LOSS = 0.5
const RATE_STEPS = 6
const RATE_SOCKET_BUFFER = 4 * 1024 * 1024
const RATE_TRIAL_SECONDS = 3

const FIGURES = [
  { key: "tcp1", label: "TCP, 1 stream", unit: "Gbit/s", ratio: "share", tunnelOnly: false },
  { key: "tcp4", label: "TCP, 4 streams", unit: "Gbit/s", ratio: "share", tunnelOnly: false },
  { key: "udp64", label: "UDP 64 B delivered", unit: "kpps", ratio: "share", tunnelOnly: false },
  { key: "udp64Lost", label: "UDP 64 B lost", unit: "%", ratio: "none", tunnelOnly: false },
  {
    key: "udp64Rate",
    label: `UDP 64 B, highest rate with <= ${RATE_MAX_LOSS}% lost`,
    unit: "kpps",
    ratio: "share",
    tunnelOnly: false
  },
  { key: "rttMedian", label: "ping RTT median", unit: "ms", ratio: "multiple", tunnelOnly: false },
  { key: "rttP99", label: "ping RTT p99", unit: "ms", ratio: "multiple", tunnelOnly: false },
  {
    key: "pingRun",
    label: "run time per ping 10 ms apart, daemons A + B",
    unit: "us",
    ratio: "none",
    tunnelOnly: true
  },
  { key: "floodRtt", label: "ping flood, average RTT", unit: "ms", ratio: "multiple", tunnelOnly: false },
  { key: "floodCpu", label: "CPU per flood ping, daemons A + B", unit: "us", ratio: "none", tunnelOnly: true },
  { key: "cpuA", label: "CPU daemon A (sender), TCP 1 stream", unit: "% core", ratio: "none", tunnelOnly: true },
  { key: "cpuB", label: "CPU daemon B (receiver), TCP 1 stream", unit: "% core", ratio: "none", tunnelOnly: true }
] as const satisfies ReadonlyArray<FigureSpec>
type Figure = (typeof FIGURES)[number]["key"]

const SETTLE = "500 millis"
const threadedDaemon = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "lib", "ThreadedDaemon.js")
/** From the daemons' start to the idle measurement (see there). */
const IDLE_SETTLE = "15 seconds"
const PING_INTERVAL_S = 0.01
/** The longest a flood ping may take: a lost reply holds the next ping back for 10 ms (ping -f). */
const FLOOD_PING_MAX_S = 0.01

interface Sample {
  readonly repetition: number
  readonly variant: Variant
  readonly test: string
  readonly detail: unknown
}

interface Failure {
  readonly repetition: number
  readonly variant: Variant
  readonly test: string
  readonly message: string
}

/** What the run learned; filled as it goes, reported even when it stops early. */
interface Results {
  readonly values: Record<Variant, Record<Figure, Array<number>>>
  readonly samples: Array<Sample>
  readonly failures: Array<Failure>
  aborted: string | null
}

const emptyResults = (): Results => {
  const perVariant = () =>
    Object.fromEntries(FIGURES.map((f) => [f.key, [] as Array<number>])) as Record<Figure, Array<number>>
  return {
    values: Object.fromEntries(VARIANTS.map((v) => [v, perVariant()])) as Results["values"],
    samples: [],
    failures: [],
    aborted: null
  }
}

const firstLine = (argv: ReadonlyArray<string>) =>
  Netns.run(argv, { timeout: "5 seconds" }).pipe(
    Effect.map((r) => (r.code === 0 ? r.stdout.split("\n")[0]?.trim() ?? "" : "")),
    Effect.orElseSucceed(() => "")
  )

const machineInfo = Effect.gen(function*() {
  const cpus = Os.cpus()
  return {
    cores: cpus.length,
    cpu: cpus[0]?.model ?? "unknown",
    memoryGiB: Math.round((Os.totalmem() / 2 ** 30) * 10) / 10,
    kernel: Os.release(),
    node: process.version,
    iperf3: (yield* firstLine(["iperf3", "--version"])).replace(/\s*\(.*$/, ""),
    commit: yield* firstLine(["git", "-C", Netns.repoRoot, "describe", "--always", "--dirty"]),
    // the kernel caps iperf3's -w (the loss-bounded UDP rate's socket buffers) at this, silently
    rmemMax: Number(yield* firstLine(["cat", "/proc/sys/net/core/rmem_max"]))
  }
})

const checkTools = Effect.gen(function*() {
  const prerequisites = yield* Netns.checkPrerequisites
  const missing = [...prerequisites.missing]
  for (const tool of ["iperf3", "timeout", "getconf"]) {
    const found = yield* Netns.run(["sh", "-c", `command -v ${tool}`], { timeout: "5 seconds" }).pipe(
      Effect.map((r) => r.code === 0),
      Effect.orElseSucceed(() => false)
    )
    if (!found) missing.push(`${tool} not found on PATH`)
  }
  if (!existsSync(Path.join(Netns.repoRoot, "dist", "src", "main.js"))) {
    missing.push("dist/src/main.js missing (npm run build)")
  }
  if (missing.length > 0) return yield* new BenchError({ message: `cannot run the benchmark: ${missing.join("; ")}` })
})

/** The pid really is the daemon's own process (ip netns exec execs its command), not a wrapper. */
const checkDaemonPid = (pid: number, expected: string) =>
  Effect.tryPromise({
    try: () => readFile(`/proc/${pid}/comm`, "utf8"),
    catch: () => new BenchError({ message: `cannot read /proc/${pid}/comm` })
  }).pipe(
    Effect.flatMap((comm) =>
      comm.trim() === expected
        ? Effect.void
        : Effect.fail(new BenchError({ message: `pid ${pid} is "${comm.trim()}", not the daemon (${expected})` }))
    )
  )

/**
 * The C reference binary, built when missing or stale; none when --no-reference, or when there is no C compiler
 * (said in one line: the run goes on without it). Any other build failure stops the run.
 */
const referenceBinary = (opts: BenchOptions) =>
  opts.reference
    ? Reference.ensureBuilt().pipe(
      Effect.map((built) => Option.some(built.binary)),
      Effect.catchTag("ReferenceBuildError", (e) =>
        e.reason === "no-compiler"
          ? Effect.as(Console.log(`${e.message}: running without it`), Option.none<string>())
          : Effect.fail(new BenchError({ message: `${e.message}\n(--no-reference runs without it)` })))
    )
    : Effect.succeed(Option.none<string>())

/** A second pair of namespaces with the same addressing, ctun on both hosts. */
const referencePair = (binary: string) =>
  Effect.gen(function*() {
    const hosts = yield* Netns.twoHosts({ startDaemons: false })
    const a = yield* Reference.host(hosts.a, hosts.b, { binary })
    const b = yield* Reference.host(hosts.b, hosts.a, { binary })
    const daemons = [yield* Netns.daemonOf(a), yield* Netns.daemonOf(b)] as const
    for (const d of daemons) yield* checkDaemonPid(d.pid, "ctun")
    const pair: Pair = { a, b, daemons, pids: [daemons[0].pid, daemons[1].pid] }
    return pair
  })

const daemonAlive = (name: string, proc: Netns.Process) =>
  Effect.flatMap(proc.exited, (exit) =>
    Option.isNone(exit) ? Effect.void : Effect.flatMap(proc.lines, (lines) =>
      Effect.fail(
        new BenchError({
          message: `daemon ${name} exited (code ${exit.value.code}, signal ${exit.value.signal}); last lines:\n` +
            lines.slice(-15).join("\n")
        })
      )))

const mib = (kb: number) => kb / 1024

const program = (opts: BenchOptions) =>
  Effect.gen(function*() {
    yield* checkTools
    const machine = yield* machineInfo
    const hz = yield* Proc.clockTicksPerSecond
    const startedAt = new Date()
    const loadStart = Os.loadavg()
    yield* Console.log(
      `kiwitun benchmark, ${startedAt.toISOString()}: ${opts.repetitions} x ${opts.duration} s per test` +
        (opts.quick ? " (--quick: a smoke test, not a measurement)" : "")
    )
    yield* Console.log(
      `machine: ${machine.cores} cores (${machine.cpu}), kernel ${machine.kernel}, Node ${machine.node}, ` +
        `${machine.iperf3}, rmem_max ${machine.rmemMax}, commit ${machine.commit}, ` +
        `load average ${loadStart.map((l) => l.toFixed(2)).join(" ")}`
    )

    const binary = yield* referenceBinary(opts)

    const { a, b } = yield* Netns.twoHosts({
      extraArgs: opts.daemonArgs,
      ...(opts.threaded ? { command: [process.execPath, "--max-semi-space-size=4", threadedDaemon] } : {})
    })
    const daemonA = yield* Netns.daemonOf(a)
    const daemonB = yield* Netns.daemonOf(b)
    yield* checkDaemonPid(daemonA.pid, "node")
    yield* checkDaemonPid(daemonB.pid, "node")
    const kiwitun: Pair = { a, b, daemons: [daemonA, daemonB], pids: [daemonA.pid, daemonB.pid] }
    yield* Console.log(
      `namespaces ${a.ns.name} / ${b.ns.name}; daemons pid ${kiwitun.pids[0]} / ${kiwitun.pids[1]}: ` +
        `kiwitun ${a.args.join(" ")}`
    )
    const reference = Option.isSome(binary) ? Option.some(yield* referencePair(binary.value)) : Option.none<Pair>()
    if (Option.isSome(reference)) {
      const c = reference.value
      yield* Console.log(
        `C reference: namespaces ${c.a.ns.name} / ${c.b.ns.name}; pid ${c.pids[0]} / ${c.pids[1]}: ` +
          `ctun ${c.a.args.join(" ")}`
      )
    }
    const pairs = [kiwitun, ...Option.toArray(reference)]

    const routes: ReadonlyArray<Route> = [
      { variant: "bare", pair: kiwitun, target: b.underlay },
      { variant: "4in4", pair: kiwitun, target: b.inner4 },
      { variant: "6in4", pair: kiwitun, target: b.inner6 },
      ...Option.toArray(reference).flatMap((c): ReadonlyArray<Route> => [
        { variant: "C-4in4", pair: c, target: c.b.inner4 },
        { variant: "C-6in4", pair: c, target: c.b.inner6 }
      ])
    ]
    const variants = routes.map((r) => r.variant)
    const tunnelVariants = variants.filter((v) => v !== "bare")
    // First packets resolve neighbours (ARP, ND) on both links: keep that out of the RTT figures, and stop here
    // if a path does not work at all.
    for (const { pair, target, variant } of routes) {
      const r = yield* Netns.ping(pair.a.ns, target, { count: 3, interval: 0.2, wait: 2 })
      if (r.received === 0) {
        return yield* new BenchError({ message: `no reply from ${target} (${variant}):\n${r.output}` })
      }
    }

    // Idle: the memory a daemon settles at after start, and what it costs with no traffic at all. V8 shrinks its heap
    // once, 6-10 s after start (about 0.1 s of CPU, measured): that is start-up, not idling, so wait it out.
    yield* Effect.sleep(opts.quick ? "2 seconds" : IDLE_SETTLE)
    const allPids = pairs.flatMap((p) => p.pids)
    const idleMemory = yield* Effect.forEach(allPids, Proc.memory)
    yield* Console.log(`idle: measuring the daemons' CPU use over ${opts.idleSeconds} s without traffic...`)
    const idle = yield* Proc.withCpu(allPids, hz, Effect.sleep(Duration.seconds(opts.idleSeconds)))

    const results = emptyResults()
    const record = (variant: Variant, figure: Figure, value: number) =>
      results.values[variant][figure].push(value)

    /** Runs one test; a failure is recorded and reported, and the run goes on with the next test. */
    const attempt = <A, E extends { readonly message: string }>(
      rep: number,
      variant: Variant,
      test: string,
      effect: Effect.Effect<A, E>,
      onSuccess: (a: A) => string
    ) =>
      effect.pipe(
        Effect.flatMap((value) =>
          Console.log(`  rep ${rep} ${variant.padEnd(6)} ${test.padEnd(14)} ${onSuccess(value)}`)
        ),
        Effect.catchAll((e) =>
          Effect.zipRight(
            Effect.sync(() => results.failures.push({ repetition: rep, variant, test, message: e.message })),
            Console.error(`  rep ${rep} ${variant.padEnd(6)} ${test.padEnd(14)} FAILED: ${e.message}`)
          )
        ),
        Effect.zipLeft(Effect.sleep(SETTLE))
      )

    const rateSeconds = opts.quick ? 1 : RATE_TRIAL_SECONDS
    const iperfOptions = (route: Route, extra: Partial<Iperf.TestOptions>) => ({
      client: route.pair.a.ns,
      server: route.pair.b.ns,
      target: route.target,
      seconds: opts.duration,
      ...extra
    })
    const iperf = (route: Route, extra: Partial<Iperf.TestOptions>) =>
      Iperf.test(iperfOptions(route, extra), (client) => client)

    const measure = (rep: number, route: Route) =>
      Effect.gen(function*() {
        const { pair, variant } = route
        const tunnel = variant !== "bare"
        if (tunnel) {
          yield* daemonAlive("A", pair.daemons[0])
          yield* daemonAlive("B", pair.daemons[1])
        }

        /** `count` pings from A to the target, 10 ms apart or as a flood, failing when none is answered. */
        const pingSeries = (count: number, flood: boolean) =>
          Netns.ping(pair.a.ns, route.target, {
            count,
            ...(flood ? { flood: true } : { interval: PING_INTERVAL_S }),
            wait: 1,
            timeout: Duration.seconds(count * (flood ? FLOOD_PING_MAX_S : PING_INTERVAL_S) + 20)
          }).pipe(
            // a flood prints no per-ping times, only the summary
            Effect.filterOrFail(
              (r) => (flood ? r.received : r.rtts.length) > 0,
              (r) => new BenchError({ message: `no replies:\n${r.output}` })
            )
          )

        /** `effect`, and each daemon's CPU use over it (NaN for the bare veth, which has none). */
        const withDaemonCpu = <A, E>(effect: Effect.Effect<A, E>) =>
          tunnel
            ? Proc.withCpu(pair.pids, hz, effect)
            : Effect.map(effect, (result) => ({ result, cpu: [Number.NaN, Number.NaN], wallMs: Number.NaN }))

        const flood = (count: number) => pingSeries(count, true)
        // First in each repetition, after a tenth more unmeasured: the one-packet path gets compiled by the JIT then,
        // not on the clock.
        const measured = flood(opts.floodPings)
        const floodTest = Effect.zipRight(
          flood(Math.max(100, Math.round(opts.floodPings / 10))),
          withDaemonCpu(measured)
        )
        yield* attempt(rep, variant, "ping flood", floodTest, ({ cpu, result, wallMs }) => {
          // CPU time of each daemon over the flood (% of a core times the wall time), per reply, in microseconds
          const perPing = cpu.map((c) => (c / 100) * wallMs * 1000 / result.received)
          record(variant, "floodRtt", result.average)
          if (tunnel) record(variant, "floodCpu", perPing[0]! + perPing[1]!)
          results.samples.push({
            repetition: rep,
            variant,
            test: "flood",
            detail: {
              transmitted: result.transmitted,
              received: result.received,
              averageMs: result.average,
              wallMs,
              daemonCpuUsPerPing: tunnel ? { a: perPing[0], b: perPing[1] } : null
            }
          })
          return `average RTT ${Stats.fmt(result.average)} ms, ${result.received}/${result.transmitted} replies` +
            (tunnel ? `, daemon CPU ${Stats.fmt(perPing[0]!)} + ${Stats.fmt(perPing[1]!)} us per ping` : "")
        })

        const pingRun = (count: number) => pingSeries(count, false)
        const pings = pingRun(opts.pings)
        // the daemons' run time over the pings: what each wake-up costs when the caches are cold (NaN: bare veth).
        // After the flood, so that every repetition times daemons whose JIT has compiled the one-packet path (a fresh
        // daemon needs a few thousand packets for that: 1,000 pings 10 ms apart are not enough); a tenth more pings
        // first, unmeasured, all the same.
        const timedPings = Effect.zipRight(
          pingRun(Math.max(10, Math.round(opts.pings / 10))),
          tunnel
            ? Proc.withRunTime(pair.pids, pings)
            : Effect.map(pings, (result) => ({ result, nanos: [Number.NaN, Number.NaN] }))
        )
        yield* attempt(rep, variant, "ping", timedPings, ({ nanos, result: r }) => {
          const med = Stats.median(r.rtts)
          const p99 = Stats.percentile(r.rtts, 99)
          // run time of each daemon per reply, in microseconds (each reply is two packets through each daemon)
          const perPing = nanos.map((n) => n / 1000 / r.received)
          record(variant, "rttMedian", med)
          record(variant, "rttP99", p99)
          if (tunnel) record(variant, "pingRun", perPing[0]! + perPing[1]!)
          results.samples.push({
            repetition: rep,
            variant,
            test: "ping",
            detail: {
              transmitted: r.transmitted,
              received: r.received,
              median: med,
              p99,
              daemonRunUsPerPing: tunnel ? { a: perPing[0], b: perPing[1] } : null
            }
          })
          return `RTT median ${Stats.fmt(med)} ms, p99 ${Stats.fmt(p99)} ms, ${r.received}/${r.transmitted} replies` +
            (tunnel ? `, daemon run time ${Stats.fmt(perPing[0]!)} + ${Stats.fmt(perPing[1]!)} us per ping` : "")
        })

        const tcp1 = Iperf.test(iperfOptions(route, {}), withDaemonCpu)
        yield* attempt(rep, variant, "TCP 1 stream", tcp1, ({ cpu, result }) => {
          if (!("tcp" in result)) return "?"
          record(variant, "tcp1", result.tcp.gbps)
          if (tunnel) {
            record(variant, "cpuA", cpu[0]!)
            record(variant, "cpuB", cpu[1]!)
          }
          results.samples.push({
            repetition: rep,
            variant,
            test: "tcp1",
            detail: { ...result.tcp, daemonCpu: tunnel ? { a: cpu[0], b: cpu[1] } : null }
          })
          return `${Stats.fmt(result.tcp.gbps)} Gbit/s, ${result.tcp.retransmits} retransmits` +
            (tunnel ? `, daemon CPU A ${Stats.fmt(cpu[0]!)}% B ${Stats.fmt(cpu[1]!)}%` : "")
        })

        yield* attempt(rep, variant, "TCP 4 streams", iperf(route, { streams: 4 }), (result) => {
          if (!("tcp" in result)) return "?"
          record(variant, "tcp4", result.tcp.gbps)
          results.samples.push({ repetition: rep, variant, test: "tcp4", detail: result.tcp })
          return `${Stats.fmt(result.tcp.gbps)} Gbit/s, ${result.tcp.retransmits} retransmits`
        })

        let unpacedPps = 0
        yield* attempt(rep, variant, "UDP 64 B", iperf(route, { udpPayload: 64 }), (result) => {
          if (!("udp" in result)) return "?"
          unpacedPps = result.udp.sentPps
          record(variant, "udp64", result.udp.deliveredPps / 1000)
          record(variant, "udp64Lost", result.udp.lostPercent)
          results.samples.push({ repetition: rep, variant, test: "udp64", detail: result.udp })
          return `${Stats.fmt(result.udp.deliveredPps / 1000)} kpps delivered of ` +
            `${Stats.fmt(result.udp.sentPps / 1000)} kpps sent (${Stats.fmt(result.udp.lostPercent)}% lost)`
        })

        const ceiling = Math.round(unpacedPps)
        if (ceiling > 0) {
          const trial = (pps: number) =>
            iperf(route, {
              udpPayload: 64,
              socketBuffer: RATE_SOCKET_BUFFER,
              seconds: rateSeconds,
              // the first trial, at the ceiling, is unpaced: iperf3 paces below its unpaced rate
              ...(pps < ceiling ? { udpRate: pps } : {})
            }).pipe(
              Effect.flatMap((result) =>
                "udp" in result
                  ? Effect.succeed<RateSearch.Trial>({
                    offeredPps: result.udp.sentPps,
                    deliveredPps: result.udp.deliveredPps,
                    lostPercent: result.udp.lostPercent
                  })
                  : Effect.fail(new BenchError({ message: "not a UDP report" }))
              ),
              Effect.zipLeft(Effect.sleep(SETTLE))
            )
          const search = RateSearch.search(trial, {
            ceiling,
            steps: opts.quick ? 2 : RATE_STEPS,
            maxLossPercent: RATE_MAX_LOSS
          })
          yield* attempt(rep, variant, "UDP 64 B rate", search, (r) => {
            // no passing trial: the path carried nothing within the tolerance, down to ceiling / 2^steps
            const best = r.best?.deliveredPps ?? 0
            record(variant, "udp64Rate", best / 1000)
            results.samples.push({ repetition: rep, variant, test: "udp64Rate", detail: r })
            return `${Stats.fmt(best / 1000)} kpps with <= ${RATE_MAX_LOSS}% lost (${r.trials.length} trials: ` +
              r.trials.map((t) => `${Stats.fmt(t.offeredPps / 1000)}k ${Stats.fmt(t.lostPercent)}%`).join(", ") + ")"
          })
        }
      })

    const measurements = Effect.gen(function*() {
      for (let rep = 1; rep <= opts.repetitions; rep++) {
        yield* Console.log(`repetition ${rep} of ${opts.repetitions}`)
        for (const route of routes) yield* measure(rep, route)
      }
    })
    yield* measurements.pipe(
      Effect.catchTag("BenchError", (e) =>
        Effect.zipRight(
          Effect.sync(() => {
            results.aborted = e.message
          }),
          Console.error(`stopped early: ${e.message}`)
        ))
    )

    yield* Effect.sleep("2 seconds")
    /** Memory after the runs, per pair (none for a pair with a daemon gone). */
    const afterMemory = yield* Effect.forEach(pairs, (pair) =>
      Effect.gen(function*() {
        const exits = yield* Effect.forEach(pair.daemons, (d) => d.exited)
        return exits.every(Option.isNone)
          ? Option.some(yield* Effect.forEach(pair.pids, Proc.memory))
          : Option.none<ReadonlyArray<Proc.Memory>>()
      }))
    const counters = Option.isSome(afterMemory[0]!)
      ? yield* Effect.forEach([daemonA, daemonB], (d) => Effect.map(Netns.requestCounters(d), (c) => c.counters)).pipe(
        Effect.orElseSucceed(() => [])
      )
      : []
    const loadEnd = Os.loadavg()

    // --- report ---
    const summaries = Object.fromEntries(VARIANTS.map((v) =>
      [v, Object.fromEntries(FIGURES.map((f) => [f.key, Stats.summarize(results.values[v][f.key])]))]
    )) as Record<Variant, Record<Figure, Summary>>
    const ratio = (spec: FigureSpec, variant: Variant): number => {
      const bare = summaries.bare[spec.key as Figure].median
      const mine = summaries[variant][spec.key as Figure].median
      return spec.ratio === "none" ? Number.NaN : mine / bare
    }
    const fmtRatio = (spec: FigureSpec, r: number): string =>
      !Number.isFinite(r) ? "" : spec.ratio === "share" ? `${Stats.fmt(r * 100)}%` : `${Stats.fmt(r)}x`

    const rows = FIGURES.map((spec) => [
      `${spec.label} (${spec.unit})`,
      spec.tunnelOnly ? "" : Stats.fmtSummary(summaries.bare[spec.key]),
      ...tunnelVariants.flatMap((v) => [Stats.fmtSummary(summaries[v][spec.key]), fmtRatio(spec, ratio(spec, v))])
    ])
    yield* Console.log("")
    yield* Console.log(
      `Results: median (min-max) of ${opts.repetitions} x ${opts.duration} s; ` +
        "ratio = tunnel median / bare veth median" +
        (Option.isSome(reference) ? "; C-4in4 and C-6in4: the C reference tunnel (ctun)" : "")
    )
    yield* Console.log(Stats.table(["figure", "bare veth", ...tunnelVariants.flatMap((v) => [v, "ratio"])], rows))

    // Columns: kiwitun A, kiwitun B, then ctun A, ctun B when the reference ran (allPids' order).
    const after = afterMemory.flatMap((m, p): ReadonlyArray<Proc.Memory | undefined> =>
      Option.getOrElse(m, () => pairs[p]!.pids.map(() => undefined))
    )
    const daemonRows = [
      ["RSS idle after start (MiB)", ...idleMemory.map((m) => Stats.fmt(mib(m.rssKb)))],
      ["RSS after the runs (MiB)", ...after.map((m) => (m === undefined ? "-" : Stats.fmt(mib(m.rssKb))))],
      ["peak RSS (MiB)", ...after.map((m) => (m === undefined ? "-" : Stats.fmt(mib(m.hwmKb))))],
      [`CPU idle over ${opts.idleSeconds} s (% core)`, ...idle.cpu.map((c) => Stats.fmt(c))]
    ]
    const daemonHeader = [
      "daemon",
      "A (192.0.2.1)",
      "B (192.0.2.2)",
      ...(Option.isSome(reference) ? ["ctun A", "ctun B"] : [])
    ]
    yield* Console.log("")
    yield* Console.log(Stats.table(daemonHeader, daemonRows))
    yield* Console.log(`load average at start ${loadStart.map((l) => l.toFixed(2)).join(" ")}, at end ${
      loadEnd.map((l) => l.toFixed(2)).join(" ")
    } (${machine.cores} cores shared with whatever else runs here)`)

    const daemonJson = (i: number, extra: Record<string, unknown>) => ({
      pid: allPids[i],
      idleRssKb: idleMemory[i]!.rssKb,
      idleCpuPercent: idle.cpu[i],
      idleSeconds: opts.idleSeconds,
      afterRssKb: after[i]?.rssKb ?? null,
      peakRssKb: after[i]?.hwmKb ?? null,
      ...extra
    })
    const json = {
      date: startedAt.toISOString(),
      machine,
      options: opts,
      loadavg: { start: loadStart, end: loadEnd },
      setup: {
        underlay: ["192.0.2.1/24", "192.0.2.2/24"],
        daemonArgs: { a: a.args, b: b.args },
        referenceArgs: Option.match(reference, { onNone: () => null, onSome: (c) => ({ a: c.a.args, b: c.b.args }) }),
        targets: Object.fromEntries(routes.map((r) => [r.variant, r.target]))
      },
      figures: Object.fromEntries(FIGURES.map((spec) => [spec.key, {
        label: spec.label,
        unit: spec.unit,
        ...Object.fromEntries(variants.filter((v) => !(spec.tunnelOnly && v === "bare")).map((v) => [v, {
          values: results.values[v][spec.key],
          ...summaries[v][spec.key],
          ...(v !== "bare" && spec.ratio !== "none" ? { ratioToBare: ratio(spec, v) } : {})
        }]))
      }])),
      daemons: {
        a: daemonJson(0, { counters: counters[0] ?? null }),
        b: daemonJson(1, { counters: counters[1] ?? null })
      },
      referenceDaemons: Option.isSome(reference) ? { a: daemonJson(2, {}), b: daemonJson(3, {}) } : null,
      samples: results.samples,
      failures: results.failures,
      aborted: results.aborted
    }
    const dir = Path.join(Netns.repoRoot, "bench", "results")
    const text = `${JSON.stringify(json, (_, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2)}\n`
    const files = [Path.join(dir, "latest.json"), Path.join(dir, `run-${Stats.stamp(startedAt)}.json`)]
    yield* Effect.tryPromise({
      try: async () => {
        await mkdir(dir, { recursive: true })
        for (const file of files) await writeFile(file, text)
      },
      catch: (cause) => new BenchError({ message: `cannot write ${dir}: ${String(cause)}` })
    })
    yield* Console.log(`\nwrote ${files.map((f) => Path.relative(process.cwd(), f)).join(" and ")}`)

    if (results.aborted !== null) return yield* new BenchError({ message: `stopped early: ${results.aborted}` })
    if (results.failures.length > 0) {
      return yield* new BenchError({ message: `${results.failures.length} test(s) failed (see above and the JSON)` })
    }
  })

const main = Effect.gen(function*() {
  const parsed = Options.parse(process.argv.slice(2), process.env)
  if (Either.isLeft(parsed)) {
    if (parsed.left === "help") return yield* Console.log(Options.usage)
    return yield* new BenchError({ message: `${parsed.left}\n${Options.usage}` })
  }
  yield* Effect.scoped(program(parsed.right)).pipe(
    Effect.onInterrupt(() => Console.error("\ninterrupted: removed the namespaces and stopped every process"))
  )
})

Main.run("bench", main)
