/** Command-line flags and environment variables of `npm run bench` (see `usage`). */
import { Either } from "effect"

export interface BenchOptions {
  /** Seconds per iperf3 test. */
  readonly duration: number
  readonly repetitions: number
  /** Seconds of no traffic over which the daemons' idle CPU use is measured. */
  readonly idleSeconds: number
  /** Pings per RTT measurement (10 ms apart). */
  readonly pings: number
  /** Pings of the flood (ping -f: the next as soon as the reply is in), over which the daemons' CPU is measured. */
  readonly floodPings: number
  readonly quick: boolean
  /** Extra arguments for both daemons (e.g. a switch under evaluation). */
  readonly daemonArgs: ReadonlyArray<string>
  /** Run bench/lib/ThreadedDaemon (one worker thread per direction) instead of kiwitun. */
  readonly threaded: boolean
  /** Also measure the C reference tunnel (bench/reference/ctun.c) in its own pair of namespaces. */
  readonly reference: boolean
}

export const DEFAULTS: BenchOptions = {
  duration: 10,
  repetitions: 3,
  idleSeconds: 10,
  pings: 200,
  floodPings: 20000,
  quick: false,
  daemonArgs: [],
  threaded: false,
  reference: true
}
/** `--quick`: a smoke test of the whole benchmark, not a measurement. */
export const QUICK: BenchOptions = {
  ...DEFAULTS,
  duration: 2,
  repetitions: 1,
  idleSeconds: 2,
  pings: 50,
  floodPings: 2000,
  quick: true
}

export const usage = [
  "usage: npm run bench -- [--quick] [--duration S] [--repetitions N] [--idle S] [--pings N] [--flood-pings N]",
  "                        [--daemon-args ARGS] [--threaded] [--no-reference]",
  "",
  `  --quick            smoke test: ${QUICK.duration} s tests, ${QUICK.repetitions} repetition, ` +
  `${QUICK.idleSeconds} s idle, ${QUICK.pings} pings, a flood of ${QUICK.floodPings}`,
  "                     (env KIWITUN_BENCH_QUICK=1)",
  `  --duration S       seconds per iperf3 test, default ${DEFAULTS.duration} (env KIWITUN_BENCH_DURATION)`,
  `  --repetitions N    repetitions of every figure, default ${DEFAULTS.repetitions} (env KIWITUN_BENCH_REPETITIONS)`,
  `  --idle S           seconds of the idle CPU measurement, default ${DEFAULTS.idleSeconds} (env KIWITUN_BENCH_IDLE)`,
  `  --pings N          pings per RTT figure, 10 ms apart, default ${DEFAULTS.pings} (env KIWITUN_BENCH_PINGS)`,
  `  --flood-pings N    pings of the flood (each sent when the last reply is in) over which the daemons' CPU per`,
  `                     ping is measured, default ${DEFAULTS.floodPings} (env KIWITUN_BENCH_FLOOD_PINGS)`,
  "  --daemon-args ARGS extra arguments for both daemons, split at spaces (env KIWITUN_BENCH_DAEMON_ARGS)",
  "  --threaded         the data path in one worker thread per direction (bench/lib/ThreadedDaemon) instead of",
  "                     kiwitun's main event loop (env KIWITUN_BENCH_THREADED=1)",
  "  --no-reference     skip the C reference tunnel (bench/reference/ctun.c, built with cc), which is otherwise",
  "                     measured in the same run in its own namespaces (env KIWITUN_BENCH_REFERENCE=0)",
  "",
  "Flags win over the environment, which wins over --quick's values."
].join("\n")

type Numeric = "duration" | "repetitions" | "idleSeconds" | "pings" | "floodPings"

const FLAGS: ReadonlyArray<readonly [string, Numeric, string]> = [
  ["--duration", "duration", "KIWITUN_BENCH_DURATION"],
  ["--repetitions", "repetitions", "KIWITUN_BENCH_REPETITIONS"],
  ["--idle", "idleSeconds", "KIWITUN_BENCH_IDLE"],
  ["--pings", "pings", "KIWITUN_BENCH_PINGS"],
  ["--flood-pings", "floodPings", "KIWITUN_BENCH_FLOOD_PINGS"]
]

const positive = (text: string, what: string): Either.Either<number, string> => {
  const n = Number(text)
  return /^\d+$/.test(text.trim()) && Number.isSafeInteger(n) && n > 0
    ? Either.right(n)
    : Either.left(`${what} must be a positive integer, got "${text}"`)
}

/** "help" when --help was asked for, a message for a bad command line, else the options. */
export const parse = (
  argv: ReadonlyArray<string>,
  env: Readonly<Record<string, string | undefined>>
): Either.Either<BenchOptions, string> => {
  const given: Partial<Record<Numeric, number>> = {}
  let daemonArgs: string | undefined
  let quick = env["KIWITUN_BENCH_QUICK"] === "1" || env["KIWITUN_BENCH_QUICK"] === "true"
  let threaded = env["KIWITUN_BENCH_THREADED"] === "1" || env["KIWITUN_BENCH_THREADED"] === "true"
  let reference = !(env["KIWITUN_BENCH_REFERENCE"] === "0" || env["KIWITUN_BENCH_REFERENCE"] === "false")
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Either.left("help")
    if (arg === "--quick") {
      quick = true
      continue
    }
    if (arg === "--threaded") {
      threaded = true
      continue
    }
    if (arg === "--no-reference") {
      reference = false
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq > 0 ? arg.slice(0, eq) : arg
    const flag = FLAGS.find(([f]) => f === name)
    if (flag === undefined && name !== "--daemon-args") return Either.left(`unknown argument "${arg}"`)
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) return Either.left(`${name} needs a value`)
    if (flag === undefined) {
      daemonArgs = value
      continue
    }
    const n = positive(value, name)
    if (Either.isLeft(n)) return Either.left(n.left)
    given[flag[1]] = n.right
  }
  const base = quick ? QUICK : DEFAULTS
  const out: Record<Numeric, number> = { ...base }
  for (const [, key, variable] of FLAGS) {
    const fromFlag = given[key]
    if (fromFlag !== undefined) {
      out[key] = fromFlag
      continue
    }
    const text = env[variable]
    if (text === undefined || text === "") continue
    const n = positive(text, variable)
    if (Either.isLeft(n)) return Either.left(n.left)
    out[key] = n.right
  }
  const args = (daemonArgs ?? env["KIWITUN_BENCH_DAEMON_ARGS"] ?? "").split(/\s+/).filter((a) => a.length > 0)
  return Either.right({ ...out, quick, daemonArgs: args, threaded, reference })
}

export const DATAPLANE_PARTS = ["code", "lean", "layers"] as const
export type DataplanePart = (typeof DATAPLANE_PARTS)[number]

export interface DataplaneOptions {
  /** Which measurements to run: the packet code alone, the tunnel over lean devices, over the test layers. */
  readonly parts: ReadonlyArray<DataplanePart>
  /** Timed rounds per figure (the median is reported). */
  readonly rounds: number
  /** Target length of one round, milliseconds. */
  readonly roundMs: number
  readonly quick: boolean
}

export const DATAPLANE_DEFAULTS: DataplaneOptions = { parts: DATAPLANE_PARTS, rounds: 7, roundMs: 300, quick: false }
export const DATAPLANE_QUICK: DataplaneOptions = { parts: DATAPLANE_PARTS, rounds: 3, roundMs: 50, quick: true }

export const dataplaneUsage = `usage: npm run bench:dataplane -- [--quick] [--rounds N] [--round-ms MS] [--only PARTS]

  --quick          smoke test: ${DATAPLANE_QUICK.rounds} rounds of ${DATAPLANE_QUICK.roundMs} ms
  --rounds N       timed rounds per figure, the median is reported (default ${DATAPLANE_DEFAULTS.rounds})
  --round-ms MS    length of one round (default ${DATAPLANE_DEFAULTS.roundMs})
  --only PARTS     comma-separated subset of ${DATAPLANE_PARTS.join(",")} (packet code alone, tunnel over lean
                   in-memory devices, tunnel over the test layers); default all`

/** "help" when --help was asked for, a message for a bad command line, else the options. */
export const parseDataplane = (argv: ReadonlyArray<string>): Either.Either<DataplaneOptions, string> => {
  let quick = false
  const given: { rounds?: number; roundMs?: number; parts?: ReadonlyArray<DataplanePart> } = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Either.left("help")
    if (arg === "--quick") {
      quick = true
      continue
    }
    const eq = arg.indexOf("=")
    const name = eq > 0 ? arg.slice(0, eq) : arg
    const key = name === "--rounds" ? "rounds" : name === "--round-ms" ? "roundMs" : undefined
    if (key === undefined && name !== "--only") return Either.left(`unknown argument "${arg}"`)
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) return Either.left(`${name} needs a value`)
    if (key === undefined) {
      const parts = value.split(",").map((p) => p.trim())
      const known = DATAPLANE_PARTS.filter((p) => parts.includes(p))
      const unknown = parts.filter((p) => !DATAPLANE_PARTS.some((k) => k === p))
      if (unknown.length > 0 || known.length === 0) {
        return Either.left(`--only takes ${DATAPLANE_PARTS.join(", ")}; got "${value}"`)
      }
      given.parts = known
      continue
    }
    const n = positive(value, name)
    if (Either.isLeft(n)) return Either.left(n.left)
    given[key] = n.right
  }
  return Either.right({ ...(quick ? DATAPLANE_QUICK : DATAPLANE_DEFAULTS), ...given, quick })
}
