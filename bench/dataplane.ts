/**
 * The data path without the kernel, `npm run bench:dataplane` (no root needed):
 *
 * 1. the packet code alone: encapBatch + decapBatch (src/domain) in a plain loop over batches of 64 packets;
 * 2. the real tunnel pipeline (src/Tunnel.ts `make`, two of them, A and B) over lean in-memory devices
 *    (bench/lib/MemoryLink.ts, per-batch work and one copy per packet outside the tunnel): packets read from A's
 *    TUN come out of B's TUN, through A's encapsulation, the in-memory underlay and B's decapsulation; in chunks
 *    of 64 packets (a busy tunnel) and of one packet (a tunnel woken for every packet, where the per-chunk cost of
 *    the pipeline is the whole cost);
 * 3. the same over the in-memory test layers of src/layers (TunDeviceTest, UnderlayTest, ...), as the unit tests
 *    join two tunnels. These layers do per-packet work of their own (an Effect per injected packet and per frame,
 *    a recorded copy of every frame), which is most of this figure: it is a floor, to compare across commits.
 *
 * For 64- and 1400-byte inner packets, 4in4 and 6in4, in packets per second: a change in packet code or in the
 * pipeline shows up here without the kernel's noise. Each figure is the median of several timed rounds after a
 * warm-up, on the live clock.
 * Results also go to bench/results/dataplane-latest.json and a dated copy.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Clock, Console, Data, Duration, Effect, Either, Exit, Layer, Logger, LogLevel, Option } from "effect"
import { mkdir, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { decode } from "../src/domain/Config.js"
import * as HostAddressesTest from "../src/layers/HostAddressesTest.js"
import * as ResolverTest from "../src/layers/ResolverTest.js"
import * as RouteTableTest from "../src/layers/RouteTableTest.js"
import * as TunDeviceTest from "../src/layers/TunDeviceTest.js"
import * as UnderlayTest from "../src/layers/UnderlayTest.js"
import { RawSockets } from "../src/services/RawSocket.js"
import { TunDevice } from "../src/services/TunDevice.js"
import * as Tunnel from "../src/Tunnel.js"
import * as MemoryLink from "./lib/MemoryLink.js"
import type { DataplaneOptions, DataplanePart } from "./lib/Options.js"
import * as Options from "./lib/Options.js"
import type { Family } from "./lib/PacketLoop.js"
import { innerPacket, LOCAL, makeLoop, REMOTE } from "./lib/PacketLoop.js"
import type { Summary } from "./lib/Stats.js"
import * as Stats from "./lib/Stats.js"

class BenchError extends Data.TaggedError("BenchError")<{ readonly message: string }> {}

const BATCH = 64
/** The chunk sizes the lean pipeline runs with: full batches, and one packet per chunk (64-byte packets only). */
const LEAN_CHUNKS: ReadonlyArray<number> = [BATCH, 1]
const CASES: ReadonlyArray<{ readonly family: Family; readonly size: number }> = [
  { family: 4, size: 64 },
  { family: 4, size: 1400 },
  { family: 6, size: 64 },
  { family: 6, size: 1400 }
]
/** The underlay test layer keeps a copy of every frame until the round ends: bound a round's bytes. */
const MAX_ROUND_BYTES = 64 * 2 ** 20

const caseName = (c: { readonly family: Family; readonly size: number; readonly chunk?: number }) =>
  `${c.family === 4 ? "4in4" : "6in4"} ${String(c.size).padStart(4)} B` +
  (c.chunk === undefined ? "" : `, chunks of ${String(c.chunk).padStart(2)}`)

const elapsedSeconds = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const t0 = yield* Clock.currentTimeNanos
    const value = yield* effect
    const t1 = yield* Clock.currentTimeNanos
    return { value, seconds: Number(t1 - t0) / 1e9 }
  })

// ---------------------------------------------------------------------------------------------------------------
// 1. The packet code alone

/** Packets per second of `work(iterations)` (which returns packets handled): median of `rounds` timed rounds. */
const timeLoop = (work: (iterations: number) => number, opts: DataplaneOptions) =>
  Effect.gen(function*() {
    // Warm-up and calibration in one: double the work until it takes a noticeable time, so the JIT has compiled
    // the hot loop before the timed rounds and a round lasts about --round-ms.
    let iterations = 16
    for (;;) {
      const { seconds } = yield* elapsedSeconds(Effect.sync(() => work(iterations)))
      if (seconds * 1000 >= opts.roundMs / 4 || iterations >= 2 ** 28) {
        iterations = Math.max(1, Math.round((iterations * opts.roundMs) / 1000 / Math.max(seconds, 1e-6)))
        break
      }
      iterations *= 2
    }
    yield* Effect.sync(() => work(iterations)) // one full round more, untimed
    const rates: Array<number> = []
    for (let r = 0; r < opts.rounds; r++) {
      const { seconds, value } = yield* elapsedSeconds(Effect.sync(() => work(iterations)))
      rates.push(value / seconds)
    }
    return Stats.summarize(rates)
  })

const packetCode = (opts: DataplaneOptions) =>
  Effect.forEach(CASES, (c) =>
    Effect.gen(function*() {
      const loop = makeLoop(c.family, c.size, BATCH)
      const roundTrip = yield* timeLoop(loop.roundTrip, opts)
      const encap = yield* timeLoop(loop.encapOnly, opts)
      const decap = yield* timeLoop(loop.decapOnly, opts)
      // Every packet must have gone through unchanged, or the figures measure a drop path.
      loop.roundTrip(1)
      const delivered = loop.lastDelivered()
      const intact = delivered.length === BATCH &&
        delivered.every((p, i) => Buffer.compare(p, innerPacket(c.family, c.size, i)) === 0)
      if (loop.drops() !== 0 || !intact) {
        return yield* new BenchError({
          message: `${caseName(c)}: packets did not come through the loop unchanged (${loop.drops()} drops)`
        })
      }
      yield* Console.log(
        `  ${caseName(c)}  encap+decap ${Stats.fmt(roundTrip.median / 1e6)} Mpps, encap ` +
          `${Stats.fmt(encap.median / 1e6)} Mpps, decap ${Stats.fmt(decap.median / 1e6)} Mpps`
      )
      return { ...c, roundTrip, encap, decap }
    }))

// ---------------------------------------------------------------------------------------------------------------
// 2. and 3. The tunnel pipeline: over lean in-memory devices, and over the test layers of src/layers

const tunnelConfig = (remote: string) =>
  Either.match(decode({ v4: true, v6: true, remote }), {
    onLeft: (e) => Effect.fail(new BenchError({ message: `config: ${e.message}` })),
    onRight: Effect.succeed
  })

/** How long without a delivered packet ends a round (everything still in flight was dropped). */
const STALL_NANOS = 500_000_000n

interface TunnelRound {
  readonly sent: number
  readonly delivered: number
  readonly seconds: number
  readonly intact: boolean
}

/**
 * One round in fresh tunnels and a fresh underlay (each round's memory goes with its scope): `count` packets into
 * A's TUN, timed until the last of them leaves B's TUN.
 */
const tunnelRound = (family: Family, size: number, count: number, names: () => string) =>
  Effect.scoped(Effect.gen(function*() {
    const underlay = yield* UnderlayTest.make
    const side = (addr: number, remote: string) =>
      Effect.gen(function*() {
        const tun = yield* TunDeviceTest.make({ name: names() })
        const net = yield* underlay.host(addr)
        const cfg = yield* tunnelConfig(remote)
        yield* Tunnel.make(cfg).pipe(
          Effect.provide(Layer.mergeAll(
            TunDeviceTest.layer(tun),
            Layer.succeed(RawSockets, net.rawSockets),
            HostAddressesTest.layer(HostAddressesTest.empty),
            RouteTableTest.empty,
            ResolverTest.none
          ))
        )
        return tun
      })
    const a = yield* side(LOCAL, "192.0.2.2")
    const b = yield* side(REMOTE, "192.0.2.1")
    const packet = innerPacket(family, size, 1)

    const began = yield* Clock.currentTimeNanos
    yield* Effect.forkScoped(Effect.gen(function*() {
      for (let i = 0; i < count; i++) yield* a.inject(packet)
    }))
    let delivered = 0
    let last = began
    let intact = true
    while (delivered < count) {
      yield* Effect.sleep("1 millis")
      const written = yield* b.takeWritten
      const now = yield* Clock.currentTimeNanos
      if (written.length > 0) {
        if (delivered === 0) intact = Buffer.compare(written[0]!, packet) === 0
        delivered += written.length
        last = now
      } else if (now - last > STALL_NANOS) {
        break
      }
    }
    return { sent: count, delivered, seconds: Number(last - began) / 1e9, intact } satisfies TunnelRound
  }))

/** How long a round over the lean devices may take before it counts as stuck (lost packets would hang it). */
const ROUND_TIMEOUT = Duration.seconds(30)

/**
 * Two real tunnels over MemoryLink's devices, built once per case: each round grants A's TUN `count` packets and
 * times them until the last leaves B's TUN.
 */
const leanCase = (family: Family, size: number, chunk: number, opts: DataplaneOptions, names: () => string) =>
  Effect.scoped(Effect.gen(function*() {
    const name = caseName({ family, size, chunk })
    const packet = innerPacket(family, size, 1)
    const net = yield* MemoryLink.link()
    const source = yield* MemoryLink.sourceTun(names(), packet, chunk)
    const sink = yield* MemoryLink.sinkTun(names())
    const start = (tun: TunDevice["Type"], addr: number, remote: string) =>
      Effect.flatMap(tunnelConfig(remote), (cfg) =>
        Tunnel.make(cfg).pipe(Effect.provide(Layer.mergeAll(
          Layer.succeed(TunDevice, tun),
          Layer.succeed(RawSockets, net.host(addr)),
          HostAddressesTest.layer(HostAddressesTest.empty),
          RouteTableTest.empty,
          ResolverTest.none
        ))))
    yield* start(source.device, LOCAL, "192.0.2.2")
    yield* start(sink.device, REMOTE, "192.0.2.1")
    const round = (count: number) =>
      Effect.gen(function*() {
        const done = yield* sink.arm(count, packet)
        const { seconds, value: intact } = yield* elapsedSeconds(Effect.zipRight(source.grant(count), done))
        if (!intact) {
          return yield* new BenchError({ message: `${name}: a packet changed on the way` })
        }
        return count / seconds
      }).pipe(
        Effect.timeoutFail({
          duration: ROUND_TIMEOUT,
          onTimeout: () => new BenchError({ message: `${name}: packets lost, round never ended` })
        })
      )
    // Warm-up: a short round, one that sizes the timed ones to about --round-ms, and one of that size, untimed.
    yield* round(BATCH * 100)
    const rate = yield* round(BATCH * 400)
    const count = Math.max(BATCH * 10, Math.round((rate * opts.roundMs) / 1000))
    yield* round(count)
    const rates: Array<number> = []
    for (let r = 0; r < opts.rounds; r++) rates.push(yield* round(count))
    const pps = Stats.summarize(rates)
    yield* Console.log(`  ${name}  ${Stats.fmt(pps.median / 1000)} kpps A's TUN -> B's TUN`)
    return { family, size, chunk, pps, packetsPerRound: count }
  }))

const leanPipeline = (opts: DataplaneOptions) =>
  Effect.gen(function*() {
    let tunnels = 0
    const names = () => `lean${++tunnels}`
    const cases = LEAN_CHUNKS.flatMap((chunk) =>
      CASES.filter((c) => chunk === BATCH || c.size === 64).map((c) => ({ ...c, chunk }))
    )
    return yield* Effect.forEach(cases, (c) => leanCase(c.family, c.size, c.chunk, opts, names))
  }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Warning)))

const tunnelPipeline = (opts: DataplaneOptions) =>
  Effect.gen(function*() {
    // Metrics are process-wide and keyed by interface name: every tunnel gets its own.
    let tunnels = 0
    const names = () => `bench${++tunnels}`
    return yield* Effect.forEach(CASES, (c) =>
      Effect.gen(function*() {
        const cap = Math.max(1000, Math.floor(MAX_ROUND_BYTES / (c.size + 20)))
        const warm = yield* tunnelRound(c.family, c.size, Math.min(cap, 5000), names)
        const rate = warm.delivered / Math.max(warm.seconds, 1e-3)
        const count = Math.min(cap, Math.max(1000, Math.round((rate * opts.roundMs) / 1000)))
        yield* tunnelRound(c.family, c.size, count, names) // untimed, like the first round
        const rounds: Array<TunnelRound> = []
        for (let r = 0; r < opts.rounds; r++) rounds.push(yield* tunnelRound(c.family, c.size, count, names))
        if (rounds.some((r) => !r.intact || r.delivered === 0)) {
          return yield* new BenchError({ message: `${caseName(c)}: packets did not come through the tunnels intact` })
        }
        const pps = Stats.summarize(rounds.map((r) => r.delivered / r.seconds))
        const lost = rounds.reduce((s, r) => s + r.sent - r.delivered, 0)
        yield* Console.log(
          `  ${caseName(c)}  ${Stats.fmt(pps.median / 1000)} kpps A's TUN -> B's TUN (${count} packets a round, ` +
            `${lost} lost in all rounds)`
        )
        return { ...c, pps, packetsPerRound: count, lost, rounds }
      }))
  }).pipe(Effect.provide(Logger.minimumLogLevel(LogLevel.Warning))) // "tunnel up" and the counters of every round

// ---------------------------------------------------------------------------------------------------------------

const mpps = (s: Summary) =>
  Stats.fmtSummary({ ...s, median: s.median / 1e6, min: s.min / 1e6, max: s.max / 1e6 })
const kpps = (s: Summary) =>
  Stats.fmtSummary({ ...s, median: s.median / 1e3, min: s.min / 1e3, max: s.max / 1e3 })

const program = (opts: DataplaneOptions) =>
  Effect.gen(function*() {
    const startedAt = new Date()
    const cpus = Os.cpus()
    const machine = {
      cores: cpus.length,
      cpu: cpus[0]?.model ?? "unknown",
      kernel: Os.release(),
      node: process.version,
      loadavg: Os.loadavg()
    }
    yield* Console.log(
      `kiwitun data-path benchmark, ${startedAt.toISOString()}: ${opts.rounds} rounds of about ${opts.roundMs} ms` +
        (opts.quick ? " (--quick: a smoke test, not a measurement)" : "")
    )
    yield* Console.log(
      `machine: ${machine.cores} cores (${machine.cpu}), kernel ${machine.kernel}, Node ${machine.node}, ` +
        `load average ${machine.loadavg.map((l) => l.toFixed(2)).join(" ")}`
    )
    const part = <A, E, R>(name: DataplanePart, title: string, effect: Effect.Effect<ReadonlyArray<A>, E, R>) =>
      opts.parts.includes(name)
        ? Effect.zipRight(Console.log(title), effect)
        : Effect.succeed<ReadonlyArray<A>>([])
    const code = yield* part(
      "code",
      `1. packet code alone (encapBatch + decapBatch, batches of ${BATCH})`,
      packetCode(opts)
    )
    const lean = yield* part(
      "lean",
      `2. Tunnel.make x 2 over lean in-memory devices (bench/lib/MemoryLink.ts), chunks of ${LEAN_CHUNKS.join(" and ")}`,
      leanPipeline(opts)
    )
    const pipeline = yield* part(
      "layers",
      "3. Tunnel.make x 2 over the in-memory test layers (TunDeviceTest, UnderlayTest)",
      tunnelPipeline(opts)
    )

    const section = (title: string, header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>) =>
      rows.length === 0 ? Effect.void : Console.log(`\n${title}\n${Stats.table(header, rows)}`)
    const of = `median (min-max) of ${opts.rounds} rounds`
    yield* section(
      `Packet code alone, Mpps: ${of}`,
      ["case", "encap+decap", "encap only", "decap only", "inner Gbit/s"],
      code.map((r) => [
        caseName(r),
        mpps(r.roundTrip),
        mpps(r.encap),
        mpps(r.decap),
        Stats.fmt((r.roundTrip.median * r.size * 8) / 1e9)
      ])
    )
    yield* section(
      `Tunnel pipeline over lean devices, A's TUN -> B's TUN: ${of}`,
      ["case", "kpps", "inner Gbit/s", "packets a round"],
      lean.map((r) => [
        caseName(r),
        kpps(r.pps),
        Stats.fmt((r.pps.median * r.size * 8) / 1e9),
        String(r.packetsPerRound)
      ])
    )
    yield* section(
      `Tunnel pipeline over the test layers, A's TUN -> B's TUN: ${of}`,
      ["case", "kpps", "inner Gbit/s", "packets a round", "lost"],
      pipeline.map((r) => [
        caseName(r),
        kpps(r.pps),
        Stats.fmt((r.pps.median * r.size * 8) / 1e9),
        String(r.packetsPerRound),
        String(r.lost)
      ])
    )

    const json = {
      date: startedAt.toISOString(),
      machine: { ...machine, loadavgEnd: Os.loadavg() },
      options: opts,
      batch: BATCH,
      packetCode: code.map((r) => ({
        case: caseName(r).replace(/\s+/g, " "),
        family: r.family,
        size: r.size,
        roundTripPps: r.roundTrip,
        encapPps: r.encap,
        decapPps: r.decap
      })),
      leanPipeline: lean.map((r) => ({
        case: caseName(r).replace(/\s+/g, " "),
        family: r.family,
        size: r.size,
        chunk: r.chunk,
        pps: r.pps,
        packetsPerRound: r.packetsPerRound
      })),
      testLayerPipeline: pipeline.map((r) => ({
        case: caseName(r).replace(/\s+/g, " "),
        family: r.family,
        size: r.size,
        pps: r.pps,
        packetsPerRound: r.packetsPerRound,
        lost: r.lost,
        rounds: r.rounds
      }))
    }
    const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
    const dir = Path.join(root, "bench", "results")
    const files = [Path.join(dir, "dataplane-latest.json"), Path.join(dir, `dataplane-${Stats.stamp(startedAt)}.json`)]
    const text = `${JSON.stringify(json, null, 2)}\n`
    yield* Effect.tryPromise({
      try: async () => {
        await mkdir(dir, { recursive: true })
        for (const file of files) await writeFile(file, text)
      },
      catch: (cause) => new BenchError({ message: `cannot write ${dir}: ${String(cause)}` })
    })
    yield* Console.log(`\nwrote ${files.map((f) => Path.relative(process.cwd(), f)).join(" and ")}`)
  })

const main = Effect.gen(function*() {
  const parsed = Options.parseDataplane(process.argv.slice(2))
  if (Either.isLeft(parsed)) {
    if (parsed.left === "help") return yield* Console.log(Options.dataplaneUsage)
    return yield* new BenchError({ message: `${parsed.left}\n${Options.dataplaneUsage}` })
  }
  yield* program(parsed.right)
})

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e)

NodeRuntime.runMain(main.pipe(Effect.timeout(Duration.minutes(30))), {
  disableErrorReporting: true,
  teardown: (exit, onExit) => {
    if (Exit.isSuccess(exit)) return onExit(0)
    if (Cause.isInterruptedOnly(exit.cause)) return onExit(130)
    const failure = Cause.failureOption(exit.cause)
    process.stderr.write(
      `bench:dataplane: ${Option.isSome(failure) ? messageOf(failure.value) : Cause.pretty(exit.cause)}\n`
    )
    onExit(1)
  }
})
