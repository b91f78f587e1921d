/**
 * The `kiwitun` command: parse the command line (a superset of the C original's), validate it, then run the
 * tunnel layer until SIGINT/SIGTERM or a fatal data-path error.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Context, Data, Effect, Either, Exit, Layer, Option, Stream } from "effect"
import { expandShortOptions } from "./domain/Argv.js"
import { decode, DEFAULT_MTU, DEFAULT_REFRESH_MINUTES, DEFAULT_TTL } from "./domain/Config.js"
import type { RawConfig } from "./domain/Config.js"
import * as Ffi from "./layers/Ffi.js"
import * as Kiwitun from "./Kiwitun.js"
import * as Log from "./Log.js"
import { formatSnapshot } from "./Metrics.js"
import { Tunnel } from "./Tunnel.js"
import { VERSION } from "./Version.js"

/** Exit with this code after printing `message` as one line on stderr. */
class Fatal extends Data.TaggedError("Fatal")<{ readonly code: number; readonly message: string }> {}

const fourInFour = Options.boolean("4in4").pipe(Options.withAlias("4"), Options.withDescription("enable IPIP (4in4)"))
const sixInFour = Options.boolean("6in4").pipe(Options.withAlias("6"), Options.withDescription("enable 6in4 (IPv6 in IPv4)"))
const remote = Options.text("remote").pipe(
  Options.withAlias("r"),
  Options.withPseudoName("address|hostname"),
  Options.withDescription("fixed remote endpoint (IPv4 address or host name); without it the routing table decides"),
  Options.optional
)
const local = Options.text("local").pipe(
  Options.withAlias("l"),
  Options.withPseudoName("address"),
  Options.withDescription("local endpoint IPv4 address (default: chosen by the kernel)"),
  Options.optional
)
const ttl = Options.text("ttl").pipe(
  Options.withAlias("t"),
  Options.withPseudoName("1..255|inherit"),
  Options.withDescription(`TTL of encapsulated and ICMP packets; 'inherit' copies the inner TTL (default ${DEFAULT_TTL})`),
  Options.optional
)
const ifname = Options.text("ifname").pipe(
  Options.withAlias("i"),
  Options.withPseudoName("name"),
  Options.withDescription("TUN interface name (default: chosen by the kernel, tunN)"),
  Options.optional
)
const refresh = Options.integer("refresh").pipe(
  Options.withPseudoName("minutes"),
  Options.withDescription(`re-resolve the remote host name every N minutes (default ${DEFAULT_REFRESH_MINUTES})`),
  Options.optional
)
const noDaemon = Options.boolean("no-daemon").pipe(
  Options.withAlias("d"),
  Options.withDescription("stay in the foreground and log to stderr (this version always does)")
)
const logLevel = Options.integer("log-level").pipe(
  Options.withPseudoName("0..7"),
  Options.withDescription("syslog level: 0 nothing .. 7 debug, above 7 clipped (default 6)"),
  Options.optional
)
const verbose = Options.boolean("verbose").pipe(Options.withAlias("v"), Options.withDescription("same as --log-level=7"))
const mtu = Options.integer("mtu").pipe(
  Options.withDescription(`TUN device MTU (default ${DEFAULT_MTU}: 1500 minus the outer header)`),
  Options.optional
)
const address = Options.text("address").pipe(
  Options.withPseudoName("cidr"),
  Options.withDescription("inner address to assign to the TUN device, e.g. 198.51.100.1/30 or 2001:db8::1/64 (repeatable)"),
  Options.repeated
)
const table = Options.integer("table").pipe(
  Options.withDescription("dynamic mode: only routes of this routing table count (default: every table)"),
  Options.optional
)
const txQueueLen = Options.integer("txqueuelen").pipe(
  Options.withDescription("TUN device transmit queue length (default 4000)"),
  Options.optional
)
const icmpRate = Options.integer("icmp-rate").pipe(
  Options.withDescription("ICMP errors per second at most, for the whole daemon (default 100)"),
  Options.optional
)
const icmpBurst = Options.integer("icmp-burst").pipe(
  Options.withDescription("ICMP error burst size (default 100)"),
  Options.optional
)

const options = {
  fourInFour,
  sixInFour,
  remote,
  local,
  ttl,
  ifname,
  refresh,
  noDaemon,
  logLevel,
  verbose,
  mtu,
  address,
  table,
  txQueueLen,
  icmpRate,
  icmpBurst
}

type Parsed = Command.Command.ParseConfig<typeof options>

const toRaw = (o: Parsed): RawConfig => ({
  v4: o.fourInFour,
  v6: o.sixInFour,
  remote: Option.getOrUndefined(o.remote),
  local: Option.getOrUndefined(o.local),
  ttl: Option.getOrUndefined(o.ttl),
  ifname: Option.getOrUndefined(o.ifname),
  refresh: Option.getOrUndefined(o.refresh),
  mtu: Option.getOrUndefined(o.mtu),
  addresses: o.address,
  logLevel: Option.getOrUndefined(o.logLevel),
  verbose: o.verbose,
  table: Option.getOrUndefined(o.table),
  txQueueLen: Option.getOrUndefined(o.txQueueLen),
  icmpRate: Option.getOrUndefined(o.icmpRate),
  icmpBurst: Option.getOrUndefined(o.icmpBurst)
})

/** SIGUSR1 / SIGHUP as a stream; the handler is removed when the stream ends. */
const signals = (signal: NodeJS.Signals) =>
  Stream.async<void>((emit) => {
    const handler = () => void emit.single(undefined)
    process.on(signal, handler)
    return Effect.sync(() => process.off(signal, handler))
  }, { bufferSize: 1, strategy: "dropping" })

const runDaemon = (o: Parsed) =>
  Effect.gen(function*() {
    const cfg = decode(toRaw(o))
    if (Either.isLeft(cfg)) return yield* new Fatal({ code: 2, message: cfg.left.message })
    const missing = Ffi.missingCapabilities()
    if (missing.length > 0) {
      return yield* new Fatal({
        code: 1,
        message: `missing capability ${missing.join(" and ")} (run as root or grant ${missing.join(", ")})`
      })
    }
    const config = cfg.right
    const journal = process.env.JOURNAL_STREAM !== undefined || process.env.NOTIFY_SOCKET !== undefined
    yield* Effect.scoped(
      Effect.gen(function*() {
        const context = yield* Layer.build(Kiwitun.layer(config))
        const tunnel = Context.get(context, Tunnel)
        yield* signals("SIGUSR1").pipe(
          Stream.runForEach(() =>
            tunnel.counters.pipe(
              Effect.flatMap((s) => Effect.logInfo(`counters ${formatSnapshot(s)}`)),
              Effect.annotateLogs({ tunnel: tunnel.ifname })
            )
          ),
          Effect.forkScoped
        )
        yield* signals("SIGHUP").pipe(
          Stream.runForEach(() =>
            Effect.logInfo("SIGHUP: re-resolving the remote").pipe(
              Effect.zipRight(tunnel.refreshRemote),
              Effect.annotateLogs({ tunnel: tunnel.ifname })
            )
          ),
          Effect.forkScoped
        )
        return yield* tunnel.failure
      })
    ).pipe(
      Effect.catchTags({
        TunError: (e) => new Fatal({ code: 1, message: e.message }),
        TunnelError: (e) => new Fatal({ code: 1, message: e.message })
      }),
      Effect.provide(Log.layer(config.logLevel, journal))
    )
  })

const kiwitun = Command.make("kiwitun", options, runDaemon).pipe(
  Command.withDescription("Userspace IPIP (4in4) and 6in4 tunnel daemon")
)

const cli = Command.run(kiwitun, { name: "kiwitun", version: VERSION })

cli(process.argv.slice(0, 2).concat(expandShortOptions(process.argv.slice(2)))).pipe(
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return onExit(0)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const e = failure.value
        if (e instanceof Fatal) {
          process.stderr.write(`kiwitun: ${e.message}\n`)
          return onExit(e.code)
        }
        // @effect/cli has already printed what was wrong with the command line
        if (ValidationError.isValidationError(e)) return onExit(2)
      }
      process.stderr.write(`kiwitun: fatal: ${Cause.pretty(exit.cause)}\n`)
      onExit(1)
    }
  })
)
