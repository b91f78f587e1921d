/**
 * The remote endpoint of a fixed-remote tunnel: a literal address, or a host name resolved at start (retrying with
 * backoff until the first answer) and again every `refreshMinutes` and on demand (SIGHUP). A failed lookup keeps
 * the last good address. 0 means "not known (yet)"; packets meanwhile are answered as having no remote.
 */
import type { Scope } from "effect"
import { Duration, Effect, Schedule } from "effect"
import { formatIpv4, isUnicast4 } from "./domain/Address.js"
import type { TunnelConfig } from "./domain/Config.js"
import { ResolveError, Resolver } from "./services/Resolver.js"

export interface Peer {
  /**
   * The current remote (u32), 0 when unknown or in dynamic mode; read synchronously by the data path (once per chunk,
   * inside its one Effect).
   */
  readonly latest: () => number
  /** Re-resolve now (a host name); a no-op for a literal address or dynamic mode. */
  readonly refresh: Effect.Effect<void>
}

/** First-answer retry: 1 s doubling up to 60 s, forever. */
export const startupRetry = Schedule.exponential("1 second").pipe(
  Schedule.either(Schedule.spaced("60 seconds")),
  Schedule.upTo(Duration.infinity)
)

export const make = (cfg: TunnelConfig): Effect.Effect<Peer, never, Resolver | Scope.Scope> =>
  Effect.gen(function*() {
    const remote = cfg.remote
    if (remote._tag === "Dynamic") return { latest: () => 0, refresh: Effect.void }
    if (remote._tag === "Address") {
      const addr = remote.addr
      return { latest: () => addr, refresh: Effect.void }
    }

    const resolver = yield* Resolver
    const host = remote.name
    // one writer (the lookups below), read once per chunk by the data path: a plain cell
    let address = 0
    const swap = (addr: number) =>
      Effect.sync(() => {
        const previous = address
        address = addr
        return previous
      })

    const resolveOnce = resolver.lookup4(host).pipe(
      // an answer no packet could be sent to (0.0.0.0, multicast, broadcast) is a failed lookup, as --remote
      // refuses such an address on the command line
      Effect.filterOrFail(isUnicast4, (addr) =>
        new ResolveError({
          host,
          reason: "failure",
          message: `${host}: unusable answer ${formatIpv4(addr)} (not a unicast address)`
        })),
      Effect.tap((addr) =>
        swap(addr).pipe(
          Effect.flatMap((previous) =>
            previous === addr
              ? Effect.logDebug("remote unchanged").pipe(Effect.annotateLogs({ peer: formatIpv4(addr) }))
              : Effect.logInfo(previous === 0 ? "remote resolved" : "remote changed").pipe(
                Effect.annotateLogs(
                  previous === 0 ? { peer: formatIpv4(addr) } : { peer: formatIpv4(addr), was: formatIpv4(previous) }
                )
              )
          )
        )
      )
    )
    const refresh = resolveOnce.pipe(
      Effect.catchTag("ResolveError", (e) =>
        Effect.logWarning("remote lookup failed, keeping the last good address").pipe(
          Effect.annotateLogs({ reason: e.reason, error: e.message })
        )),
      Effect.asVoid
    )

    const firstAnswer = resolveOnce.pipe(
      Effect.tapError((e) =>
        Effect.logWarning("remote lookup failed, retrying").pipe(
          Effect.annotateLogs({ reason: e.reason, error: e.message })
        )
      ),
      Effect.retry(startupRetry)
    )
    yield* firstAnswer.pipe(
      Effect.zipRight(Effect.forever(Effect.sleep(Duration.minutes(cfg.refreshMinutes)).pipe(Effect.zipRight(refresh)))),
      Effect.annotateLogs({ fiber: "dns-refresh", host }),
      Effect.forkScoped
    )
    return {
      latest: () => address,
      refresh: refresh.pipe(Effect.annotateLogs({ fiber: "dns-refresh", host }))
    }
  })
