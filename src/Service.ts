/**
 * The daemon as a service: the tunnel plus what runs around it. In order: the tunnel layer (device and sockets),
 * the control socket, the pidfile, the switch to `--user`, then READY=1 to the service manager and "ready" to the
 * command that daemonized us. SIGUSR1 logs the counters (and refreshes STATUS=), SIGHUP re-resolves the remote;
 * SIGINT/SIGTERM interrupt the whole thing, which sends STOPPING=1 first and then releases everything in reverse.
 */
import type { Scope } from "effect"
import { Clock, Context, Data, Duration, Effect, Layer, Queue, Ref, Schedule, Stream } from "effect"
import { formatIpv4 } from "./domain/Address.js"
import type { TunnelConfig } from "./domain/Config.js"
import type { NotifyField } from "./domain/SdNotify.js"
import type { StatusReport } from "./domain/Status.js"
import { summaryLine } from "./domain/Status.js"
import * as Control from "./Control.js"
import * as Daemon from "./Daemon.js"
import * as Ffi from "./layers/Ffi.js"
import * as Kiwitun from "./Kiwitun.js"
import { formatSnapshot } from "./Metrics.js"
import { Notifier } from "./Notify.js"
import * as Privileges from "./Privileges.js"
import { Tunnel } from "./Tunnel.js"
import { VERSION } from "./Version.js"

/** Stop with this exit code after printing (or, detached, reporting and logging) `message`. */
export class Fatal extends Data.TaggedError("Fatal")<{ readonly code: number; readonly message: string }> {}

export interface ServiceOptions {
  /** This process is the detached copy (it tells the service manager its pid with MAINPID=). */
  readonly detached: boolean
  /** Absolute path of the pidfile, if any. */
  readonly pidfile: string | undefined
  /** Absolute path of the control socket given with --control-socket; undefined = the default, best effort. */
  readonly controlSocket: string | undefined
  /** The user to become once everything is open (`--user`). */
  readonly user: Ffi.UserAccount | undefined
}

/** How often STATUS= is refreshed (only sent when the summary changed). */
export const STATUS_INTERVAL: Duration.Duration = Duration.seconds(15)

/**
 * Reads the clock now, and gives the seconds passed since, on the monotonic clock: the wall clock (which dates the
 * start in the report) may step back or forward, the uptime does not.
 */
export const uptimeClock: Effect.Effect<Effect.Effect<number>> = Effect.map(
  Clock.currentTimeNanos,
  (start) => Effect.map(Clock.currentTimeNanos, (now) => Math.max(0, Number(now - start) / 1e9))
)

export const modeOf = (cfg: Pick<TunnelConfig, "v4" | "v6">): string =>
  [cfg.v4 ? "4in4" : "", cfg.v6 ? "6in4" : ""].filter((m) => m !== "").join("+")

export const remoteOf = (cfg: Pick<TunnelConfig, "remote">): string =>
  cfg.remote._tag === "Address" ? formatIpv4(cfg.remote.addr) : cfg.remote._tag === "Host" ? cfg.remote.name : "dynamic"

/**
 * Notifies `extra` (READY=1 and the like) together with STATUS= when the summary differs from the last one sent;
 * sends nothing when there is neither. Called at start, on SIGUSR1 and periodically.
 */
export const makeStatusPusher = (
  summary: Effect.Effect<string>,
  notify: (fields: ReadonlyArray<NotifyField>) => Effect.Effect<void>
): Effect.Effect<(extra?: ReadonlyArray<NotifyField>) => Effect.Effect<void>> =>
  Effect.map(Ref.make<string | undefined>(undefined), (last) => (extra = []) =>
    Effect.flatMap(summary, (line) =>
      Effect.flatMap(Ref.getAndSet(last, line), (previous) => {
        const fields: ReadonlyArray<NotifyField> = previous === line ? extra : [...extra, ["STATUS", line]]
        return fields.length === 0 ? Effect.void : notify(fields)
      })))

/**
 * A signal as a stream. The handler is installed before this returns, not when a consumer fiber first runs: a
 * signal arriving in between would otherwise meet Node's default action (SIGHUP ends the process, SIGUSR1 starts
 * the inspector). It is removed when the scope closes; signals arriving faster than they are handled collapse into one.
 */
export const signals = (signal: NodeJS.Signals): Effect.Effect<Stream.Stream<void>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.sliding<void>(1)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        const handler = () => void Queue.unsafeOffer(queue, undefined)
        process.on(signal, handler)
        return handler
      }),
      (handler) => Effect.sync(() => process.off(signal, handler))
    )
    return Stream.fromQueue(queue)
  })

const userName = (uid: number): string => Ffi.lookupUser(String(uid))?.name ?? String(uid)

/** Runs the tunnel as a service until it fails or the fiber is interrupted (SIGINT/SIGTERM). */
export const run = (
  config: TunnelConfig,
  options: ServiceOptions
): Effect.Effect<void, Fatal, Notifier | Daemon.Readiness> =>
  Effect.gen(function*() {
    const notifier = yield* Notifier
    const readiness = yield* Daemon.Readiness
    const fatal = (e: { readonly message: string }) => new Fatal({ code: 1, message: e.message })

    yield* Effect.scoped(
      Effect.gen(function*() {
        // From here on SIGUSR1 and SIGHUP wait for the tunnel instead of meeting Node's default actions.
        const usr1 = yield* signals("SIGUSR1")
        const hup = yield* signals("SIGHUP")
        const context = yield* Layer.build(Kiwitun.layer(config)).pipe(Effect.mapError(fatal))
        const tunnel = Context.get(context, Tunnel)
        const startedAt = yield* Clock.currentTimeMillis
        const uptime = yield* uptimeClock
        const uid = options.user?.uid ?? process.getuid?.() ?? 0
        const user = options.user?.name ?? userName(uid)

        const report: Effect.Effect<StatusReport> = Effect.map(
          Effect.zip(tunnel.counters, uptime),
          ([counters, uptimeSeconds]) => ({
            version: VERSION,
            pid: process.pid,
            ifname: tunnel.ifname,
            ifindex: tunnel.ifindex,
            mode: modeOf(config),
            mtu: config.mtu,
            remote: remoteOf(config),
            local: config.local === 0 ? "" : formatIpv4(config.local),
            user,
            uid,
            startedAt: new Date(startedAt).toISOString(),
            uptimeSeconds,
            memory: memoryNow(),
            counters
          })
        )

        yield* serveControl(options, tunnel.ifname, report)
        if (options.pidfile !== undefined) yield* Daemon.pidfile(options.pidfile).pipe(Effect.mapError(fatal))
        if (options.user !== undefined) {
          yield* Privileges.dropTo(options.user).pipe(Effect.mapError(fatal))
          yield* Effect.logInfo("dropped privileges").pipe(
            Effect.annotateLogs({ user: options.user.name, uid: options.user.uid, kept: "CAP_NET_ADMIN" })
          )
        }

        const pushStatus = yield* makeStatusPusher(Effect.map(report, summaryLine), notifier.notify)
        yield* usr1.pipe(
          Stream.runForEach(() =>
            tunnel.counters.pipe(
              Effect.flatMap((s) => Effect.logInfo(`counters ${formatSnapshot(s)}`)),
              Effect.zipRight(pushStatus())
            )
          ),
          Effect.annotateLogs({ tunnel: tunnel.ifname }),
          Effect.forkScoped
        )
        yield* hup.pipe(
          Stream.runForEach(() =>
            Effect.logInfo("SIGHUP: re-resolving the remote").pipe(Effect.zipRight(tunnel.refreshRemote))
          ),
          Effect.annotateLogs({ tunnel: tunnel.ifname }),
          Effect.forkScoped
        )
        // Finalizers run last-in first-out: the manager hears STOPPING=1 before the device goes away.
        yield* Effect.addFinalizer(() => notifier.notify([["STOPPING", "1"]]))

        const ready: Array<NotifyField> = options.detached ? [["MAINPID", String(process.pid)]] : []
        yield* pushStatus([...ready, ["READY", "1"]])
        yield* readiness.ready
        if (notifier.enabled) {
          yield* pushStatus().pipe(Effect.repeat(Schedule.spaced(STATUS_INTERVAL)), Effect.forkScoped)
        }
        return yield* tunnel.failure.pipe(Effect.mapError(fatal))
      })
    )
  })

/** The control socket: a failure is fatal when the path was asked for, a warning for the default path. */
const serveControl = (
  options: ServiceOptions,
  ifname: string,
  report: Effect.Effect<StatusReport>
): Effect.Effect<void, Fatal, Scope.Scope> => {
  const path = options.controlSocket ?? Control.defaultControlSocket(ifname)
  return Control.serve(path, report, { owner: options.user }).pipe(
    Effect.catchTag("ControlError", (e) =>
      options.controlSocket !== undefined
        ? Effect.fail(new Fatal({ code: 1, message: e.message }))
        : Effect.logWarning(`${e.message}; 'kiwitun status' cannot reach this daemon`))
  )
}

/** Resident memory and JavaScript heap in use, for `kiwitun status`. */
const memoryNow = () => {
  const m = process.memoryUsage()
  return { rssBytes: m.rss, heapUsedBytes: m.heapUsed }
}
