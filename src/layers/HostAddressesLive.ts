/**
 * Follows this host's addresses over rtnetlink: one RTM_GETADDR dump at start, then the IPv4/IPv6 address
 * notification groups, with a full re-dump whenever notifications were lost (ENOBUFS).
 */
import { Duration, Effect, Either, ExecutionStrategy, Exit, Layer, Ref, Scope } from "effect"
import { ipv4FromBytes } from "../domain/Address.js"
import * as Netlink from "../domain/Netlink.js"
import type { AddressSnapshot } from "../services/HostAddresses.js"
import { HostAddresses } from "../services/HostAddresses.js"
import { TunDevice } from "../services/TunDevice.js"
import * as Ffi from "./Ffi.js"
import * as NetlinkSocket from "./NetlinkSocket.js"

const STARTUP_TIMEOUT = Duration.seconds(5)
const RETRY_AFTER = Duration.seconds(1)
const RCVBUF = 1024 * 1024

export const empty: AddressSnapshot = { tun4: 0, tun6: null, local4: new Set() }

/** Addresses as dumped/notified, keyed by family, interface, address and prefix (the kernel's identity). */
type Table = Map<string, Netlink.AddressInfo>

const keyOf = (a: Netlink.AddressInfo): string => `${a.family}/${a.ifindex}/${a.addr.join(".")}/${a.prefix}`

/** The snapshot for the ICMP builder; insertion order is the kernel's dump order (primary addresses first). */
export const snapshotOf = (table: Iterable<Netlink.AddressInfo>, tunIndex: number): AddressSnapshot => {
  let tun4 = 0
  let global6: Uint8Array | null = null
  let link6: Uint8Array | null = null
  const local4 = new Set<number>()
  for (const a of table) {
    if (a.family === 4) {
      const v = ipv4FromBytes(a.addr)
      local4.add(v)
      if (a.ifindex === tunIndex && tun4 === 0) tun4 = v
    } else if (a.ifindex === tunIndex) {
      if (a.scope === Netlink.RT_SCOPE_UNIVERSE && global6 === null) global6 = a.addr
      else if (a.scope === Netlink.RT_SCOPE_LINK && link6 === null) link6 = a.addr
    }
  }
  return { tun4, tun6: global6 ?? link6, local4 }
}

/**
 * The dump/notification bookkeeping, pure: notifications that arrive while a dump runs are replayed on top of the
 * dump's result, since either may reflect the newer state.
 */
export interface Tracker {
  /** Starts a dump with `seq` (the caller sends the request). */
  readonly beginDump: (seq: number) => void
  /** Feeds one datagram; returns whether the table changed and whether a new dump should be requested. */
  readonly feed: (datagram: Uint8Array) => { readonly changed: boolean; readonly redump: boolean }
  /** Notifications were lost: re-dump now, or after the running dump. */
  readonly overrun: () => boolean
  readonly dumping: () => boolean
  readonly addresses: () => Iterable<Netlink.AddressInfo>
}

export const makeTracker = (): Tracker => {
  let live: Table = new Map()
  let dump: Table | null = null
  let dumpSeq = -1
  let pending: Array<[number, Netlink.AddressInfo]> = []
  let again = false

  const apply = (table: Table, type: number, a: Netlink.AddressInfo) => {
    if (type === Netlink.RTM_NEWADDR) table.set(keyOf(a), a)
    else table.delete(keyOf(a))
  }

  return {
    beginDump: (seq) => {
      dump = new Map()
      dumpSeq = seq
      pending = []
      again = false
    },
    dumping: () => dump !== null,
    addresses: () => live.values(),
    overrun: () => {
      if (dump === null) return true
      again = true
      return false
    },
    feed: (datagram) => {
      let changed = false
      let redump = false
      const msgs = Netlink.splitMessages(datagram)
      if (Either.isLeft(msgs)) {
        // a datagram we cannot walk may have carried a notification: resynchronise
        if (dump === null) return { changed, redump: true }
        again = true
        return { changed, redump }
      }
      for (const m of msgs.right) {
        if (dump !== null && m.seq === dumpSeq) {
          if (m.type === Netlink.RTM_NEWADDR) {
            const a = Netlink.parseAddress(m)
            if (Either.isRight(a)) dump.set(keyOf(a.right), a.right)
            // the table changed under the dump (NLM_F_DUMP_INTR): its result may be inconsistent
            if ((m.flags & Netlink.NLM_F_DUMP_INTR) !== 0) again = true
          } else if (m.type === Netlink.NLMSG_DONE) {
            live = dump
            for (const [type, a] of pending) apply(live, type, a)
            dump = null
            pending = []
            changed = true
            if (again) {
              again = false
              redump = true
            }
          } else if (m.type === Netlink.NLMSG_ERROR) {
            const e = Netlink.parseError(m)
            if (Either.isRight(e) && e.right.errno !== 0) {
              dump = null
              pending = []
              redump = true
            }
          }
        } else if (m.type === Netlink.RTM_NEWADDR || m.type === Netlink.RTM_DELADDR) {
          const a = Netlink.parseAddress(m)
          if (Either.isLeft(a)) continue
          apply(live, m.type, a.right)
          if (dump !== null) pending.push([m.type, a.right])
          changed = true
        }
      }
      return { changed, redump }
    }
  }
}

export const make: Effect.Effect<HostAddresses["Type"], never, TunDevice | Scope.Scope> = Effect.gen(function*() {
  const tun = yield* TunDevice
  const ref = yield* Ref.make<AddressSnapshot>(empty)
  // the follower's resources live in a child scope, closed at once if the start fails
  const child = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
  yield* follow(tun.ifindex, ref).pipe(
    Scope.extend(child),
    Effect.tapError(() => Scope.close(child, Exit.void)),
    Effect.catchAll((e) =>
      Effect.logWarning("cannot follow host addresses over rtnetlink; ICMP errors use kernel-chosen sources").pipe(
        Effect.annotateLogs({ errno: e.errno, error: e.message })
      )
    )
  )
  return HostAddresses.of({ current: Ref.get(ref) })
}).pipe(Effect.annotateLogs({ fiber: "host-addresses" }))

export const layer: Layer.Layer<HostAddresses, never, TunDevice> = Layer.scoped(HostAddresses, make)

/** Opens the socket, waits for the first dump, then forks the follower into the scope. */
const follow = (
  tunIndex: number,
  ref: Ref.Ref<AddressSnapshot>
): Effect.Effect<void, NetlinkSocket.NetlinkSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const nl = yield* NetlinkSocket.open(lib, {
      groups: Netlink.RTMGRP_IPV4_IFADDR | Netlink.RTMGRP_IPV6_IFADDR,
      rcvbuf: RCVBUF
    })
    const tracker = makeTracker()
    const publish = Effect.suspend(() => Ref.set(ref, snapshotOf(tracker.addresses(), tunIndex)))
    const dump = Effect.suspend(() => {
      const seq = nl.nextSeq()
      tracker.beginDump(seq)
      return nl.send(Netlink.buildGetAddrDump(seq))
    })
    const step = Effect.flatMap(nl.receive, (datagram) => {
      const r = tracker.feed(datagram)
      return Effect.zipRight(r.changed ? publish : Effect.void, r.redump ? dump : Effect.void)
    }).pipe(
      Effect.catchIf(
        (e) => e.errno === Ffi.Errno.ENOBUFS,
        () =>
          Effect.zipRight(
            Effect.logDebug("rtnetlink overrun, re-reading the address table"),
            Effect.suspend(() => (tracker.overrun() ? dump : Effect.void))
          )
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
            message: "no answer to the address dump"
          })
      })
    )
    yield* publish

    yield* step.pipe(
      Effect.catchAll((e) =>
        Effect.logWarning("rtnetlink address follower failed; retrying").pipe(
          Effect.annotateLogs({ errno: e.errno, error: e.message }),
          Effect.zipRight(Effect.sleep(RETRY_AFTER)),
          Effect.zipRight(dump),
          Effect.ignore
        )
      ),
      Effect.forever,
      Effect.annotateLogs({ fiber: "host-addresses" }),
      Effect.forkScoped
    )
  })
