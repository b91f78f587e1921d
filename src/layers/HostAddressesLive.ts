/**
 * Follows this host's addresses over rtnetlink: one RTM_GETADDR dump at start, then the IPv4/IPv6 address
 * notification groups, with a full re-dump whenever notifications were lost (ENOBUFS). The socket loop is
 * NetlinkFollower's, shared with the route mirror.
 */
import { Effect, Layer } from "effect"
import type { Scope } from "effect"
import { ipv4FromBytes } from "../domain/Address.js"
import * as Netlink from "../domain/Netlink.js"
import * as NetlinkTracker from "../domain/NetlinkTracker.js"
import type { AddressSnapshot } from "../services/HostAddresses.js"
import { HostAddresses } from "../services/HostAddresses.js"
import { TunDevice } from "../services/TunDevice.js"
import * as NetlinkFollower from "./NetlinkFollower.js"

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

/** Addresses as the generic tracker mirrors them; every notification counts as a change. */
const addressTable: NetlinkTracker.TableSpec<Netlink.AddressInfo, Table> = {
  newType: Netlink.RTM_NEWADDR,
  delType: Netlink.RTM_DELADDR,
  parse: Netlink.parseAddress,
  fresh: () => new Map(),
  apply: (table, type, _flags, a) => {
    if (type === Netlink.RTM_NEWADDR) table.set(keyOf(a), a)
    else table.delete(keyOf(a))
    return true
  }
}

/**
 * The dump/notification bookkeeping (src/domain/NetlinkTracker.ts) as the address follower uses it, pure:
 * notifications that arrive while a dump runs are replayed on top of the dump's result.
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

const makeAddressTracker = (): NetlinkTracker.Tracker<Table> => NetlinkTracker.make(addressTable, new Map())

export const makeTracker = (): Tracker => {
  const t = makeAddressTracker()
  return {
    beginDump: t.beginDump,
    feed: (datagram) => {
      const r = t.feed(datagram)
      return { changed: r.changed, redump: r.redump !== null }
    },
    overrun: t.overrun,
    dumping: t.dumping,
    addresses: () => t.table().values()
  }
}

export const make: Effect.Effect<HostAddresses["Type"], never, TunDevice | Scope.Scope> = Effect.gen(function*() {
  const tun = yield* TunDevice
  // one writer (the netlink follower), read once per chunk by the data path: a plain cell
  let snapshot: AddressSnapshot = empty
  const tracker = makeAddressTracker()
  yield* NetlinkFollower.follow({
    what: "address",
    groups: Netlink.RTMGRP_IPV4_IFADDR | Netlink.RTMGRP_IPV6_IFADDR,
    rcvbuf: RCVBUF,
    dumpRequest: (seq) => Netlink.buildGetAddrDump(seq),
    tracker,
    onChange: Effect.sync(() => {
      snapshot = snapshotOf(tracker.table().values(), tun.ifindex)
    })
  }).pipe(
    Effect.catchAll((e) =>
      Effect.logWarning("cannot follow host addresses over rtnetlink; ICMP errors use kernel-chosen sources").pipe(
        Effect.annotateLogs({ errno: e.errno, error: e.message })
      )
    )
  )
  return HostAddresses.of({ latest: () => snapshot })
}).pipe(Effect.annotateLogs({ fiber: "host-addresses" }))

export const layer: Layer.Layer<HostAddresses, never, TunDevice> = Layer.scoped(HostAddresses, make)
