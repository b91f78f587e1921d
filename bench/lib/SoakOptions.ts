/** Command-line flags of `npm run soak` (see `usage`). */
import { Either } from "effect"

export interface SoakOptions {
  /** Length of the whole run. */
  readonly minutes: number
  /** RSS is compared from the first sample at or after this point (clipped to half the run for short runs). */
  readonly warmupMinutes: number
  /** Seconds between samples of RSS, counters and logs. */
  readonly sampleSeconds: number
  /** Seconds between two route churn rounds (add, replace, delete in turn). */
  readonly churnSeconds: number
  /** Routes changed per churn round: IPv4 /32s and IPv6 /64s. */
  readonly churnRoutes4: number
  readonly churnRoutes6: number
  /** Seconds between two hostile bursts (one at each daemon). */
  readonly hostileSeconds: number
  /** Rounds of the hostile catalogue per burst (every item once per round). */
  readonly hostileRounds: number
  /** MiB per TCP transfer. */
  readonly transferMiB: number
  /** Pause after each transfer, milliseconds (0: back to back). */
  readonly transferPauseMs: number
  /** Pass when the RSS floor of each daemon grew by less than this after warm-up (Soak.rssFigures). */
  readonly rssLimitMiB: number
  /** Extra arguments for both daemons. */
  readonly daemonArgs: ReadonlyArray<string>
}

export const DEFAULTS: SoakOptions = {
  minutes: 10,
  warmupMinutes: 1,
  sampleSeconds: 10,
  churnSeconds: 5,
  churnRoutes4: 200,
  churnRoutes6: 100,
  hostileSeconds: 30,
  hostileRounds: 10,
  transferMiB: 64,
  transferPauseMs: 0,
  rssLimitMiB: 5,
  daemonArgs: []
}

export const usage = `usage: npm run soak -- [--minutes N] [options]    (as root)

Two namespaces joined by veth, daemon A in dynamic mode and daemon B with A as its fixed remote, for N minutes:
TCP transfers (content checked) and pings over 4in4 and 6in4, route churn on A through its route mirror, hostile
bursts of malformed protocol 4/41 packets (scripts/lib/Hostile.ts) at both daemons; RSS, counters and logs
sampled throughout. A one-hour soak is \`npm run soak -- --minutes 60\`.

  --minutes N          length of the run, default ${DEFAULTS.minutes} (decimals allowed: --minutes 0.5)
  --warmup N           minutes before the RSS baseline, default ${DEFAULTS.warmupMinutes} (at most half the run)
  --sample S           seconds between samples, default ${DEFAULTS.sampleSeconds}
  --churn S            seconds between route churn rounds, default ${DEFAULTS.churnSeconds}
  --churn-routes N,M   IPv4 and IPv6 routes per round, default ${DEFAULTS.churnRoutes4},${DEFAULTS.churnRoutes6}
  --hostile S          seconds between hostile bursts, default ${DEFAULTS.hostileSeconds}
  --hostile-rounds N   rounds of the hostile catalogue per burst, default ${DEFAULTS.hostileRounds}
  --transfer-mib N     MiB per TCP transfer, default ${DEFAULTS.transferMiB}
  --pause-ms N         pause after each transfer, default ${DEFAULTS.transferPauseMs}
  --rss-limit-mib N    largest acceptable growth of the RSS floor after warm-up, default ${DEFAULTS.rssLimitMiB}
  --daemon-args ARGS   extra arguments for both daemons, split at spaces

Writes bench/results/soak-<date>.json; exits non-zero when a target is missed (RSS growth, transfer errors,
unexpected log lines or a daemon exit, hostile packets not counted as expected) or the soak could not do its part.`

type Numeric = Exclude<keyof SoakOptions, "daemonArgs" | "churnRoutes4" | "churnRoutes6">

/** flag -> option, and whether it may be fractional or zero */
const FLAGS: ReadonlyArray<readonly [string, Numeric, NumberKind]> = [
  ["--minutes", "minutes", "fraction"],
  ["--warmup", "warmupMinutes", "fraction"],
  ["--sample", "sampleSeconds", "positive"],
  ["--churn", "churnSeconds", "positive"],
  ["--hostile", "hostileSeconds", "positive"],
  ["--hostile-rounds", "hostileRounds", "positive"],
  ["--transfer-mib", "transferMiB", "positive"],
  ["--pause-ms", "transferPauseMs", "zero-ok"],
  ["--rss-limit-mib", "rssLimitMiB", "fraction"]
]

type NumberKind = "positive" | "fraction" | "zero-ok"

const number = (text: string, name: string, kind: NumberKind): Either.Either<number, string> => {
  const n = Number(text)
  const ok = kind === "fraction"
    ? /^\d+(\.\d+)?$/.test(text) && n > 0
    : /^\d+$/.test(text) && Number.isSafeInteger(n) && (kind === "zero-ok" || n > 0)
  return ok ? Either.right(n) : Either.left(`${name} takes ${kind === "fraction" ? "a positive number" : kind ===
      "zero-ok" ? "a whole number" : "a positive whole number"}, got "${text}"`)
}

/** "help" when --help was asked for, a message for a bad command line, else the options. */
export const parse = (argv: ReadonlyArray<string>): Either.Either<SoakOptions, string> => {
  const out: { -readonly [K in keyof SoakOptions]: SoakOptions[K] } = { ...DEFAULTS }
  let warmupGiven = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--help" || arg === "-h") return Either.left("help")
    const eq = arg.indexOf("=")
    const name = eq > 0 ? arg.slice(0, eq) : arg
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    const flag = FLAGS.find(([f]) => f === name)
    if (flag === undefined && name !== "--daemon-args" && name !== "--churn-routes") {
      return Either.left(`unknown argument "${arg}"`)
    }
    if (value === undefined) return Either.left(`${name} needs a value`)
    if (name === "--daemon-args") {
      out.daemonArgs = value.split(/\s+/).filter((a) => a.length > 0)
    } else if (name === "--churn-routes") {
      const m = /^(\d+),(\d+)$/.exec(value)
      if (m === null || Number(m[1]) > 256 || Number(m[2]) > 65536) {
        return Either.left(`--churn-routes takes N,M with N <= 256 and M <= 65536, got "${value}"`)
      }
      out.churnRoutes4 = Number(m[1])
      out.churnRoutes6 = Number(m[2])
    } else if (flag !== undefined) {
      const n = number(value, name, flag[2])
      if (Either.isLeft(n)) return Either.left(n.left)
      out[flag[1]] = n.right
      if (flag[1] === "warmupMinutes") warmupGiven = true
    }
  }
  // A run shorter than two warm-ups still gets a baseline to compare with: the middle of the run.
  if (out.warmupMinutes > out.minutes / 2) {
    if (warmupGiven) return Either.left(`--warmup must be at most half of --minutes (${out.minutes / 2})`)
    out.warmupMinutes = out.minutes / 2
  }
  return Either.right(out)
}
