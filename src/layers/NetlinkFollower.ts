/**
 * Keeps an rtnetlink mirror (src/domain/NetlinkTracker.ts) in step with the kernel: a socket subscribed to the
 * mirror's multicast groups, one dump at start (waited for, so the mirror is complete when its layer is built), then
 * the notifications in a fiber forked into the caller's scope, with a full re-dump whenever the tracker asks for one
 * (lost notifications, an interrupted or failed dump, a silent kernel flush) or a dump stalls.
 */
import { Duration, Effect, ExecutionStrategy, Exit, Option, Scope } from "effect"
import type * as NetlinkTracker from "../domain/NetlinkTracker.js"
import * as Ffi from "./Ffi.js"
import * as NetlinkSocket from "./NetlinkSocket.js"

const STARTUP_TIMEOUT = Duration.seconds(5)
/** A dump is one datagram per recvmsg, each produced as soon as the previous one was read: silence means trouble. */
const DUMP_STALL = Duration.seconds(10)
const RETRY_AFTER = Duration.seconds(1)
/** The kernel notifies a link or address change before it flushes the routes that depend on it. */
const SETTLE = Duration.millis(100)
/**
 * Dump requests use sequence numbers from here: notifications carry their requester's nlmsg_seq, and a dump's seq
 * is how its replies are told apart. `ip` uses time() (below 2^31 until 2038, 0xc0000000 in 2072), other daemons
 * count from 1, the kernel's own events use 0.
 */
const DUMP_SEQ_BASE = 0xc0000000

export interface FollowOptions<T> {
  /** Names the table in log messages ("address", "route"). */
  readonly what: string
  /** RTMGRP_* bitmask. */
  readonly groups: number
  /** SO_RCVBUF to ask for. */
  readonly rcvbuf: number
  /** The dump request, with nlmsg_seq `seq`. */
  readonly dumpRequest: (seq: number) => Uint8Array
  readonly tracker: NetlinkTracker.Tracker<T>
  /** Runs after each datagram that changed the live table (the first dump included). */
  readonly onChange?: Effect.Effect<void>
  /** Runs after each completed dump. */
  readonly onDump?: Effect.Effect<void>
}

const delayOf = (reason: NetlinkTracker.RedumpReason): Duration.Duration | undefined =>
  reason === "failed" ? RETRY_AFTER : reason === "silent-flush" ? SETTLE : undefined

/**
 * Opens the socket, reads the first dump into the tracker, and forks the follower into the scope. On failure every
 * resource it opened is released before the error is returned.
 */
export const follow = <T>(opts: FollowOptions<T>): Effect.Effect<void, NetlinkSocket.NetlinkSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    // the follower's resources live in a child scope, closed at once if the start fails
    const child = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
    yield* start(opts).pipe(
      Scope.extend(child),
      Effect.tapError(() => Scope.close(child, Exit.void))
    )
  })

const start = <T>(opts: FollowOptions<T>): Effect.Effect<void, NetlinkSocket.NetlinkSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const nl = yield* NetlinkSocket.open(lib, { groups: opts.groups, rcvbuf: opts.rcvbuf })
    const tracker = opts.tracker
    let seq = DUMP_SEQ_BASE

    const dump = Effect.suspend(() => {
      seq = seq >= 0xffffffff ? DUMP_SEQ_BASE : seq + 1
      tracker.beginDump(seq)
      return nl.send(opts.dumpRequest(seq))
    })

    const redump = (reason: NetlinkTracker.RedumpReason) => {
      const delay = delayOf(reason)
      return Effect.logInfo(`re-reading the ${opts.what} table`).pipe(
        Effect.annotateLogs({ reason }),
        Effect.zipRight(delay === undefined ? Effect.void : Effect.sleep(delay)),
        Effect.zipRight(dump)
      )
    }

    const handle = (datagram: Uint8Array) =>
      Effect.suspend(() => {
        const r = tracker.feed(datagram)
        const effects: Array<Effect.Effect<void, NetlinkSocket.NetlinkSocketError>> = []
        if (r.changed && opts.onChange !== undefined) effects.push(opts.onChange)
        if (r.dumped && opts.onDump !== undefined) effects.push(opts.onDump)
        if (r.redump !== null) effects.push(redump(r.redump))
        return effects.length === 0 ? Effect.void : Effect.all(effects, { discard: true })
      })

    // while a dump runs, a long silence restarts it (its DONE may have been in a datagram that could not be read)
    const next = Effect.suspend(() =>
      tracker.dumping()
        ? nl.receive.pipe(Effect.timeoutTo({ duration: DUMP_STALL, onSuccess: Option.some, onTimeout: Option.none }))
        : Effect.map(nl.receive, Option.some)
    )

    const step = Effect.flatMap(next, Option.match({ onNone: () => redump("stalled"), onSome: handle })).pipe(
      Effect.catchIf(
        (e) => e.errno === Ffi.Errno.ENOBUFS,
        () => Effect.suspend(() => (tracker.overrun() ? redump("overrun") : Effect.void))
      )
    )

    yield* dump
    yield* step.pipe(
      Effect.repeat({ while: () => tracker.dumping() }),
      Effect.timeoutFail({
        duration: STARTUP_TIMEOUT,
        onTimeout: () =>
          new NetlinkSocket.NetlinkSocketError({
            op: "receive",
            errno: Ffi.Errno.ETIMEDOUT,
            message: `no answer to the ${opts.what} dump`
          })
      })
    )

    yield* step.pipe(
      Effect.catchAll((e) =>
        Effect.logWarning(`rtnetlink ${opts.what} follower failed; retrying`).pipe(
          Effect.annotateLogs({ errno: e.errno, error: e.message }),
          Effect.zipRight(Effect.sleep(RETRY_AFTER)),
          Effect.zipRight(dump),
          Effect.ignore
        )
      ),
      Effect.forever,
      Effect.forkScoped
    )
  })
