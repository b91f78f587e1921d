/**
 * The `kiwitun` command: parse the command line (a superset of the C original's), validate it, then either start
 * the detached daemon and wait for it to be up (the default), or run the tunnel in the foreground (`-d`) until
 * SIGINT/SIGTERM or a fatal data-path error. `kiwitun status` asks a running daemon for its counters.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Command, Options, ValidationError } from "@effect/cli"
// subpath imports: the package root loads every module of the platform (clustering, SQL, HTTP), ~30 MB of RSS
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Either, Exit, Option } from "effect"
import * as Control from "./Control.js"
import * as Daemon from "./Daemon.js"
import type { SwitchTable } from "./domain/Argv.js"
import { expandShortOptions, keepLastOccurrence } from "./domain/Argv.js"
import { decode, DEFAULT_MTU, DEFAULT_REFRESH_MINUTES, DEFAULT_TTL } from "./domain/Config.js"
import type { RawConfig } from "./domain/Config.js"
import { formatStatus } from "./domain/Status.js"
import * as Ffi from "./layers/Ffi.js"
import * as Log from "./Log.js"
import * as Notify from "./Notify.js"
import * as Privileges from "./Privileges.js"
import { Fatal } from "./Service.js"
import * as Service from "./Service.js"
import { VERSION } from "./Version.js"

const fourInFour = Options.boolean("4in4").pipe(Options.withAlias("4"), Options.withDescription("enable IPIP (4in4)"))
const sixInFour = Options.boolean("6in4").pipe(
  Options.withAlias("6"),
  Options.withDescription("enable 6in4 (IPv6 in IPv4)")
)
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
  Options.withDescription(
    `TTL of encapsulated and ICMP packets; 'inherit' copies the inner TTL (default ${DEFAULT_TTL})`
  ),
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
  Options.withDescription(
    "stay in the foreground and log to stderr (default: detach once the tunnel is up, log to syslog)"
  )
)
const pidfile = Options.text("pidfile").pipe(
  Options.withPseudoName("path"),
  Options.withDescription("write the daemon's pid to this file (removed on exit)"),
  Options.optional
)
const user = Options.text("user").pipe(
  Options.withPseudoName("name|uid"),
  Options.withDescription("once the device and sockets are open, run as this user keeping only CAP_NET_ADMIN"),
  Options.optional
)
const controlSocket = Options.text("control-socket").pipe(
  Options.withPseudoName("path"),
  Options.withDescription(`control socket for 'kiwitun status' (default ${Control.CONTROL_DIR}/<ifname>.sock)`),
  Options.optional
)
const logLevel = Options.integer("log-level").pipe(
  Options.withPseudoName("0..7"),
  Options.withDescription("syslog level: 0 nothing .. 7 debug, above 7 clipped (default 6)"),
  Options.optional
)
const verbose = Options.boolean("verbose").pipe(
  Options.withAlias("v"),
  Options.withDescription("same as --log-level=7")
)
const mtu = Options.integer("mtu").pipe(
  Options.withDescription(`TUN device MTU (default ${DEFAULT_MTU}: 1500 minus the outer header)`),
  Options.optional
)
const address = Options.text("address").pipe(
  Options.withPseudoName("cidr"),
  Options.withDescription(
    "inner address to assign to the TUN device, e.g. 198.51.100.1/30 or 2001:db8::1/64 (repeatable)"
  ),
  Options.repeated,
  // (optional as well, so that the usage line shows it in brackets: a bare repeated option reads as required there)
  Options.optional
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

const noOffload = Options.boolean("no-offload").pipe(
  Options.withDescription(
    "do not use TUN offloads (kernel TCP and UDP segmentation and checksum offload, with coalesced writes back); " +
      "default: on"
  )
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
  icmpBurst,
  noOffload,
  pidfile,
  user,
  controlSocket
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
  addresses: Option.getOrElse(o.address, () => []),
  logLevel: Option.getOrUndefined(o.logLevel),
  verbose: o.verbose,
  table: Option.getOrUndefined(o.table),
  txQueueLen: Option.getOrUndefined(o.txQueueLen),
  icmpRate: Option.getOrUndefined(o.icmpRate),
  icmpBurst: Option.getOrUndefined(o.icmpBurst),
  noOffload: o.noOffload
})

const absolute = (path: Option.Option<string>): string | undefined =>
  Option.getOrUndefined(Option.map(path, (p) => Path.resolve(p)))

/** Everything that can be refused before anything is created; then daemonize, or run. */
const runDaemon = (o: Parsed) =>
  Effect.gen(function*() {
    const cfg = decode(toRaw(o))
    if (Either.isLeft(cfg)) return yield* new Fatal({ code: 2, message: cfg.left.message })
    const config = cfg.right
    for (const [name, value] of [["--pidfile", o.pidfile], ["--control-socket", o.controlSocket]] as const) {
      if (Option.isSome(value) && value.value.trim() === "") {
        return yield* new Fatal({ code: 2, message: `${name} must be a path, got ''` })
      }
    }
    let account: Ffi.UserAccount | undefined
    if (Option.isSome(o.user)) {
      account = Ffi.lookupUser(o.user.value)
      if (account === undefined) return yield* new Fatal({ code: 2, message: `--user: no such user '${o.user.value}'` })
    }
    const missing = Ffi.missingCapabilities()
    if (missing.length > 0) {
      return yield* new Fatal({
        code: 1,
        message: `missing capability ${missing.join(" and ")} (run as root or grant ${missing.join(", ")})`
      })
    }
    if (account !== undefined) {
      const lacking = Privileges.missingForUserSwitch()
      if (lacking.length > 0) {
        return yield* new Fatal({ code: 1, message: `--user needs ${lacking.join(" and ")} (run as root)` })
      }
    }

    const detached = Daemon.isDetachedCopy(process.env)
    if (!o.noDaemon && !detached) {
      // The starting command: the detached copy validates all of this again and does the work.
      return yield* Daemon.start(Daemon.selfCommand()).pipe(
        Effect.mapError((e) => new Fatal({ code: e.code, message: e.message })),
        Effect.asVoid
      )
    }

    const options: Service.ServiceOptions = {
      detached,
      pidfile: absolute(o.pidfile),
      controlSocket: absolute(o.controlSocket),
      user: account
    }
    // like daemon(3): do not keep the starting directory busy (paths were made absolute above)
    if (detached) yield* Effect.sync(() => process.chdir("/"))
    const journal = Log.stderrIsJournal(process.env, stderrIdentity())
    const service = Service.run(config, options).pipe(Effect.provide(Notify.layer))
    if (!detached) {
      return yield* service.pipe(
        Effect.provide(Daemon.layerFromEnv),
        Effect.provide(Log.layer(config.logLevel, journal))
      )
    }
    // Detached, stderr is /dev/null: a start failure goes to syslog and back to the starting command.
    return yield* Effect.flatMap(Daemon.Readiness, (readiness) =>
      service.pipe(
        Effect.tapErrorCause((cause) => {
          const failure = Cause.failureOption(cause)
          const [code, message] = Option.isSome(failure)
            ? [failure.value.code, failure.value.message]
            : [1, `fatal: ${Cause.pretty(cause).split("\n")[0] ?? "unknown"}`]
          return Cause.isInterruptedOnly(cause)
            ? Effect.void
            : Effect.logError(message).pipe(Effect.zipRight(readiness.failed(code, message)))
        })
      )).pipe(Effect.provide(Daemon.layerFromEnv), Effect.provide(Log.syslogLayer(config.logLevel)))
  })

/** device and inode of stderr, to compare with JOURNAL_STREAM */
const stderrIdentity = (): { readonly dev: bigint; readonly ino: bigint } | undefined => {
  try {
    const st = Fs.fstatSync(2, { bigint: true })
    return { dev: st.dev, ino: st.ino }
  } catch {
    return undefined
  }
}

const json = Options.boolean("json").pipe(Options.withDescription("print the report as one JSON object"))
const socket = Options.text("socket").pipe(
  Options.withPseudoName("path"),
  Options.withDescription(`the daemon's control socket (default: ${Control.CONTROL_DIR}/<ifname>.sock)`),
  Options.optional
)
const statusIfname = Options.text("ifname").pipe(
  Options.withAlias("i"),
  Options.withPseudoName("name"),
  Options.withDescription(
    `the tunnel interface, for the default socket (default: the only one in ${Control.CONTROL_DIR})`
  ),
  Options.optional
)

const status = Command.make("status", { json, socket, ifname: statusIfname }, (o) =>
  Effect.gen(function*() {
    const path = Option.isSome(o.socket)
      ? o.socket.value
      : yield* Control.findControlSocket(Option.getOrUndefined(o.ifname))
    const report = yield* Control.query(path)
    process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatus(report))
  }).pipe(Effect.mapError((e) => new Fatal({ code: 1, message: e.message })))).pipe(
  Command.withDescription("print the counters of a running daemon (read from its control socket)")
)

const kiwitun = Command.make("kiwitun", options, runDaemon).pipe(
  Command.withDescription("Userspace IPIP (4in4) and 6in4 tunnel daemon"),
  Command.withSubcommands([status])
)

const cli = Command.run(kiwitun, { name: "kiwitun", version: VERSION })

/** The daemon's switches (above) for `keepLastOccurrence`: a repeated switch counts once, with its last value. */
const DAEMON_SWITCHES: SwitchTable = {
  values: new Set([
    "remote",
    "local",
    "ttl",
    "ifname",
    "refresh",
    "pidfile",
    "user",
    "control-socket",
    "log-level",
    "mtu",
    "address",
    "table",
    "txqueuelen",
    "icmp-rate",
    "icmp-burst"
  ]),
  flags: new Set(["4in4", "6in4", "no-daemon", "verbose", "no-offload"]),
  repeatable: new Set(["address"]),
  aliases: new Map([["4", "4in4"], ["6", "6in4"], ["r", "remote"], ["l", "local"], ["t", "ttl"], ["i", "ifname"], [
    "d",
    "no-daemon"
  ], ["v", "verbose"]])
}

const words = expandShortOptions(process.argv.slice(2))
cli(process.argv.slice(0, 2).concat(words[0] === "status" ? words : keepLastOccurrence(words, DAEMON_SWITCHES))).pipe(
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
