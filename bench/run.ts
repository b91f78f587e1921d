/**
 * The tunnel benchmark, `npm run bench` (as root, with iproute2, iputils-ping and iperf3):
 *
 * two namespaces joined by veth (192.0.2.1/24, 192.0.2.2/24), a kiwitun daemon on each carrying 4in4
 * (198.51.100.0/30) and 6in4 (2001:db8:1::/64) over one TUN device, and, in one run, the same figures for the bare
 * veth, 4in4 and 6in4: TCP goodput (one and four streams), 64-byte UDP datagrams delivered per second, ping RTT
 * (median, p99), the daemons' CPU use during the single-stream TCP test, their memory and their idle CPU use.
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
import type { Summary } from "./lib/Stats.js"
import * as Stats from "./lib/Stats.js"

class BenchError extends Data.TaggedError("BenchError")<{ readonly message: string }> {}

const VARIANTS = ["bare", "4in4", "6in4"] as const
type Variant = (typeof VARIANTS)[number]

interface FigureSpec {
  readonly key: string
  readonly label: string
  readonly unit: string
  /** How the ratio to the bare veth reads: a share of it (throughput) or a multiple (latency); none for CPU. */
  readonly ratio: "share" | "multiple" | "none"
  readonly tunnelOnly: boolean
}

const FIGURES = [
  { key: "tcp1", label: "TCP, 1 stream", unit: "Gbit/s", ratio: "share", tunnelOnly: false },
  { key: "tcp4", label: "TCP, 4 streams", unit: "Gbit/s", ratio: "share", tunnelOnly: false },
  { key: "udp64", label: "UDP 64 B delivered", unit: "kpps", ratio: "share", tunnelOnly: false },
  { key: "udp64Lost", label: "UDP 64 B lost", unit: "%", ratio: "none", tunnelOnly: false },
  { key: "rttMedian", label: "ping RTT median", unit: "ms", ratio: "multiple", tunnelOnly: false },
  { key: "rttP99", label: "ping RTT p99", unit: "ms", ratio: "multiple", tunnelOnly: false },
  { key: "cpuA", label: "CPU daemon A (sender), TCP 1 stream", unit: "% core", ratio: "none", tunnelOnly: true },
  { key: "cpuB", label: "CPU daemon B (receiver), TCP 1 stream", unit: "% core", ratio: "none", tunnelOnly: true }
] as const satisfies ReadonlyArray<FigureSpec>
type Figure = (typeof FIGURES)[number]["key"]

const SETTLE = "500 millis"
const threadedDaemon = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "lib", "ThreadedDaemon.js")
/** From the daemons' start to the idle measurement (see there). */
const IDLE_SETTLE = "15 seconds"
const PING_INTERVAL_S = 0.01

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
    values: { bare: perVariant(), "4in4": perVariant(), "6in4": perVariant() },
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
    commit: yield* firstLine(["git", "-C", Netns.repoRoot, "describe", "--always", "--dirty"])
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

/** The pid really is the daemon's Node process (ip netns exec execs its command), not a wrapper. */
const checkDaemonPid = (pid: number) =>
  Effect.tryPromise({
    try: () => readFile(`/proc/${pid}/comm`, "utf8"),
    catch: () => new BenchError({ message: `cannot read /proc/${pid}/comm` })
  }).pipe(
    Effect.flatMap((comm) =>
      comm.trim() === "node"
        ? Effect.void
        : Effect.fail(new BenchError({ message: `pid ${pid} is "${comm.trim()}", not the daemon's node process` }))
    )
  )

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
        `${machine.iperf3}, commit ${machine.commit}, load average ${loadStart.map((l) => l.toFixed(2)).join(" ")}`
    )

    const { a, b } = yield* Netns.twoHosts({
      extraArgs: opts.daemonArgs,
      ...(opts.threaded ? { command: [process.execPath, "--max-semi-space-size=4", threadedDaemon] } : {})
    })
    const daemonA = yield* Netns.daemonOf(a)
    const daemonB = yield* Netns.daemonOf(b)
    yield* checkDaemonPid(daemonA.pid)
    yield* checkDaemonPid(daemonB.pid)
    const pids = [daemonA.pid, daemonB.pid] as const
    yield* Console.log(
      `namespaces ${a.ns.name} / ${b.ns.name}; daemons pid ${pids[0]} / ${pids[1]}: kiwitun ${a.args.join(" ")}`
    )

    const target: Record<Variant, string> = { bare: b.underlay, "4in4": b.inner4, "6in4": b.inner6 }
    // First packets resolve neighbours (ARP, ND) on both links: keep that out of the RTT figures, and stop here
    // if a path does not work at all.
    for (const variant of VARIANTS) {
      const r = yield* Netns.ping(a.ns, target[variant], { count: 3, interval: 0.2, wait: 2 })
      if (r.received === 0) {
        return yield* new BenchError({ message: `no reply from ${target[variant]} (${variant}):\n${r.output}` })
      }
    }

    // Idle: the memory a daemon settles at after start, and what it costs with no traffic at all. V8 shrinks its heap
    // once, 6-10 s after start (about 0.1 s of CPU, measured): that is start-up, not idling, so wait it out.
    yield* Effect.sleep(opts.quick ? "2 seconds" : IDLE_SETTLE)
    const idleMemory = yield* Effect.forEach(pids, Proc.memory)
    yield* Console.log(`idle: measuring the daemons' CPU use over ${opts.idleSeconds} s without traffic...`)
    const idle = yield* Proc.withCpu(pids, hz, Effect.sleep(Duration.seconds(opts.idleSeconds)))

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
          Console.log(`  rep ${rep} ${variant.padEnd(4)} ${test.padEnd(14)} ${onSuccess(value)}`)
        ),
        Effect.catchAll((e) =>
          Effect.zipRight(
            Effect.sync(() => results.failures.push({ repetition: rep, variant, test, message: e.message })),
            Console.error(`  rep ${rep} ${variant.padEnd(4)} ${test.padEnd(14)} FAILED: ${e.message}`)
          )
        ),
        Effect.zipLeft(Effect.sleep(SETTLE))
      )

    const iperfOptions = (variant: Variant, extra: { readonly streams?: number; readonly udpPayload?: number }) => ({
      client: a.ns,
      server: b.ns,
      target: target[variant],
      seconds: opts.duration,
      ...extra
    })
    const iperf = (variant: Variant, extra: { readonly streams?: number; readonly udpPayload?: number }) =>
      Iperf.test(iperfOptions(variant, extra), (client) => client)

    const measure = (rep: number, variant: Variant) =>
      Effect.gen(function*() {
        const tunnel = variant !== "bare"
        if (tunnel) {
          yield* daemonAlive("A", daemonA)
          yield* daemonAlive("B", daemonB)
        }

        const pings = Netns.ping(a.ns, target[variant], {
          count: opts.pings,
          interval: PING_INTERVAL_S,
          wait: 1,
          timeout: Duration.seconds(opts.pings * PING_INTERVAL_S + 20)
        }).pipe(
          Effect.filterOrFail((r) => r.rtts.length > 0, (r) => new BenchError({ message: `no replies:\n${r.output}` }))
        )
        yield* attempt(rep, variant, "ping", pings, (r) => {
          const med = Stats.median(r.rtts)
          const p99 = Stats.percentile(r.rtts, 99)
          record(variant, "rttMedian", med)
          record(variant, "rttP99", p99)
          results.samples.push({
            repetition: rep,
            variant,
            test: "ping",
            detail: { transmitted: r.transmitted, received: r.received, median: med, p99 }
          })
          return `RTT median ${Stats.fmt(med)} ms, p99 ${Stats.fmt(p99)} ms, ${r.received}/${r.transmitted} replies`
        })

        const tcp1 = Iperf.test(
          iperfOptions(variant, {}),
          (client) =>
            tunnel
              ? Proc.withCpu(pids, hz, client)
              : Effect.map(client, (result) => ({ result, cpu: [Number.NaN, Number.NaN], wallMs: Number.NaN }))
        )
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

        yield* attempt(rep, variant, "TCP 4 streams", iperf(variant, { streams: 4 }), (result) => {
          if (!("tcp" in result)) return "?"
          record(variant, "tcp4", result.tcp.gbps)
          results.samples.push({ repetition: rep, variant, test: "tcp4", detail: result.tcp })
          return `${Stats.fmt(result.tcp.gbps)} Gbit/s, ${result.tcp.retransmits} retransmits`
        })

        yield* attempt(rep, variant, "UDP 64 B", iperf(variant, { udpPayload: 64 }), (result) => {
          if (!("udp" in result)) return "?"
          record(variant, "udp64", result.udp.deliveredPps / 1000)
          record(variant, "udp64Lost", result.udp.lostPercent)
          results.samples.push({ repetition: rep, variant, test: "udp64", detail: result.udp })
          return `${Stats.fmt(result.udp.deliveredPps / 1000)} kpps delivered of ` +
            `${Stats.fmt(result.udp.sentPps / 1000)} kpps sent (${Stats.fmt(result.udp.lostPercent)}% lost)`
        })
      })

    const measurements = Effect.gen(function*() {
      for (let rep = 1; rep <= opts.repetitions; rep++) {
        yield* Console.log(`repetition ${rep} of ${opts.repetitions}`)
        for (const variant of VARIANTS) yield* measure(rep, variant)
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
    const alive = Option.isNone(yield* daemonA.exited) && Option.isNone(yield* daemonB.exited)
    const afterMemory = alive ? Option.some(yield* Effect.forEach(pids, Proc.memory)) : Option.none()
    const counters = alive
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
      Stats.fmtSummary(summaries["4in4"][spec.key]),
      fmtRatio(spec, ratio(spec, "4in4")),
      Stats.fmtSummary(summaries["6in4"][spec.key]),
      fmtRatio(spec, ratio(spec, "6in4"))
    ])
    yield* Console.log("")
    yield* Console.log(
      `Results: median (min-max) of ${opts.repetitions} x ${opts.duration} s; ratio = tunnel median / bare veth median`
    )
    yield* Console.log(Stats.table(["figure", "bare veth", "4in4", "ratio", "6in4", "ratio"], rows))

    const after = Option.getOrUndefined(afterMemory)
    const daemonRows = [
      ["RSS idle after start (MiB)", ...idleMemory.map((m) => Stats.fmt(mib(m.rssKb)))],
      ["RSS after the runs (MiB)", ...(after ?? []).map((m) => Stats.fmt(mib(m.rssKb)))],
      ["peak RSS (MiB)", ...(after ?? []).map((m) => Stats.fmt(mib(m.hwmKb)))],
      [`CPU idle over ${opts.idleSeconds} s (% core)`, ...idle.cpu.map((c) => Stats.fmt(c))]
    ]
    yield* Console.log("")
    yield* Console.log(Stats.table(["daemon", "A (192.0.2.1)", "B (192.0.2.2)"], daemonRows))
    yield* Console.log(`load average at start ${loadStart.map((l) => l.toFixed(2)).join(" ")}, at end ${
      loadEnd.map((l) => l.toFixed(2)).join(" ")
    } (${machine.cores} cores shared with whatever else runs here)`)

    const json = {
      date: startedAt.toISOString(),
      machine,
      options: opts,
      loadavg: { start: loadStart, end: loadEnd },
      setup: {
        underlay: ["192.0.2.1/24", "192.0.2.2/24"],
        daemonArgs: { a: a.args, b: b.args },
        targets: target
      },
      figures: Object.fromEntries(FIGURES.map((spec) => [spec.key, {
        label: spec.label,
        unit: spec.unit,
        ...Object.fromEntries(VARIANTS.filter((v) => !(spec.tunnelOnly && v === "bare")).map((v) => [v, {
          values: results.values[v][spec.key],
          ...summaries[v][spec.key],
          ...(v !== "bare" && spec.ratio !== "none" ? { ratioToBare: ratio(spec, v) } : {})
        }]))
      }])),
      daemons: Object.fromEntries(["a", "b"].map((name, i) => [name, {
        pid: pids[i],
        idleRssKb: idleMemory[i]!.rssKb,
        idleCpuPercent: idle.cpu[i],
        idleSeconds: opts.idleSeconds,
        afterRssKb: after?.[i]?.rssKb ?? null,
        peakRssKb: after?.[i]?.hwmKb ?? null,
        counters: counters[i] ?? null
      }])),
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
