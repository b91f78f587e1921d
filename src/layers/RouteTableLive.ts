/**
 * Routes through the tunnel device, mirrored from the kernel over rtnetlink (behaviour.md "Routes (dynamic mode)"):
 * one RTM_GETROUTE dump of every family and table at start, then the IPv4 and IPv6 route notifications, with a full
 * re-dump, replacing the table, whenever notifications were lost (ENOBUFS), a dump was interrupted
 * (NLM_F_DUMP_INTR), or the kernel flushed routes without notifying. What counts and which gateway a route gives is
 * src/domain/RouteMirror.ts; the socket loop is NetlinkFollower's, shared with the address follower.
 *
 * Lookups read the mirror directly: synchronous and allocation-free, on the data path.
 */
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import * as Netlink from "../domain/Netlink.js"
import type * as NetlinkTracker from "../domain/NetlinkTracker.js"
import * as RouteMirror from "../domain/RouteMirror.js"
import { RouteTable } from "../services/RouteTable.js"
import { TunDevice } from "../services/TunDevice.js"
import * as NetlinkFollower from "./NetlinkFollower.js"

/**
 * An `ip -batch` of route changes arrives faster than the event loop reads it, and each queued notification holds
 * about 760 bytes of socket buffer (measured: 4 MiB, doubled by the kernel, overflowed after some 11,000). 16 MiB
 * holds about 44,000 before an overrun forces a re-dump; it is a limit, not an allocation.
 */
const RCVBUF = 16 * 1024 * 1024

export interface RouteTableOptions {
  /** Mirror only this routing table (`--table`); every table when undefined. */
  readonly table: number | undefined
  /** SO_RCVBUF for the rtnetlink socket; default 16 MiB. Tests lower it to provoke overruns. */
  readonly rcvbuf?: number
}

/** The service plus what tests and diagnostics look at. */
export interface RouteTableHandle {
  readonly service: RouteTable["Type"]
  /** Every route mirrored. */
  readonly routes: () => Array<RouteMirror.MirroredRoute>
  /** Dumps completed, notifications applied, messages skipped. */
  readonly stats: () => NetlinkTracker.TrackerStats
}

export const makeHandle = (
  opts: RouteTableOptions
): Effect.Effect<RouteTableHandle, never, TunDevice | Scope.Scope> =>
  Effect.gen(function*() {
    const tun = yield* TunDevice
    const mirror = RouteMirror.make({ ifindex: tun.ifindex, table: opts.table })
    const tracker = mirror.tracker
    yield* NetlinkFollower.follow({
      what: "route",
      groups: RouteMirror.GROUPS,
      rcvbuf: opts.rcvbuf ?? RCVBUF,
      dumpRequest: (seq) => Netlink.buildGetRouteDump(seq),
      tracker,
      onDump: Effect.suspend(() => {
        const size = mirror.size()
        return Effect.logDebug("route table read").pipe(
          Effect.annotateLogs({ v4: size.v4, v6: size.v6, skipped: tracker.stats().skipped })
        )
      })
    }).pipe(
      Effect.catchAll((e) =>
        Effect.logError("cannot mirror the routing table over rtnetlink; every packet gets Destination Unreachable")
          .pipe(Effect.annotateLogs({ errno: e.errno, error: e.message }))
      )
    )
    const service = RouteTable.of({ lookup4: mirror.lookup4, lookup6: mirror.lookup6, size: mirror.size })
    return { service, routes: mirror.routes, stats: tracker.stats }
  }).pipe(Effect.annotateLogs({ fiber: "route-table", table: opts.table ?? "all" }))

export const make = (opts: RouteTableOptions): Effect.Effect<RouteTable["Type"], never, TunDevice | Scope.Scope> =>
  Effect.map(makeHandle(opts), (h) => h.service)

export const layer = (opts: RouteTableOptions): Layer.Layer<RouteTable, never, TunDevice> =>
  Layer.scoped(RouteTable, make(opts))
