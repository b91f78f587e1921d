/**
 * The routes through the tunnel device, mirrored from the kernel's routing tables (behaviour.md "Routes (dynamic
 * mode)"), pure: decoded rtnetlink route messages in, longest-prefix lookups out. The socket side is
 * src/layers/RouteTableLive.ts.
 *
 * What counts: unicast routes (RTN_UNICAST) whose output interface is the tunnel, for a multipath route every next
 * hop's; from every table, or from `table` alone when it is given. The value of a route is the IPv4 address to send
 * the encapsulated packet to:
 * - an IPv4 gateway as is (`via 192.0.2.2`);
 * - an IPv6 gateway that embeds an IPv4 address: `::ffff:192.0.2.2` (IPv4-mapped, the C original's form, which the
 *   kernel accepts with `onlink`) or `::192.0.2.2` (IPv4-compatible, the form the kernel's sit device uses);
 * - an IPv4 gateway of an IPv6 route given as RTA_VIA (the kernel refuses it for IPv6 today, but the attribute is
 *   the kernel's way to say it);
 * - 0 (NO_GATEWAY) for a route without a gateway (the kernel's own route for a prefix on the device) or with any
 *   other gateway (fe80::1, ...): lookups then answer "no gateway", and the packet gets an ICMP unreachable.
 *
 * Identity follows the kernel's: a route is (table, prefix, tos, metric), and routes that differ only in their next
 * hop coexist (`ip route append`, IPv6 siblings), so an entry is (table, prefix, tos, metric, next hop). A multipath
 * route is one entry per next hop. When a prefix has several entries (several tables, metrics or next hops), the
 * lookup uses the one with the lowest metric, then the lowest table id, then the earliest added: the kernel itself
 * consults one table per policy rule, which a per-device mirror cannot know; lowest metric is the documented choice.
 */
import { formatIpv4, formatIpv6, ipv4FromBytes } from "./Address.js"
import * as Netlink from "./Netlink.js"
import * as NetlinkTracker from "./NetlinkTracker.js"
import { RouteTrie4, RouteTrie6 } from "./RouteTrie.js"

/** <linux/rtnetlink.h> rtm_flags: a cached clone (a PMTU or redirect exception), not a configured route. */
const RTM_F_CLONED = 0x200
/** <linux/rtnetlink.h> link messages and group, <linux/if.h> IFF_UP. */
const RTM_NEWLINK = 16
const RTM_DELLINK = 17
const RTMGRP_LINK = 0x1
const IFF_UP = 0x1
const IFINFOMSG_LEN = 16
const IFADDRMSG_LEN = 8
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/**
 * The multicast groups a route mirror listens to: the IPv4 and IPv6 route groups, plus links and IPv4 addresses,
 * because the kernel removes IPv4 routes without a notification when their device goes down or loses its last IPv4
 * address (measured on 6.18: `ip link set dev down` and `ip addr del` of the last address flush them silently).
 */
export const GROUPS = Netlink.RTMGRP_IPV4_ROUTE | Netlink.RTMGRP_IPV6_ROUTE | RTMGRP_LINK |
  Netlink.RTMGRP_IPV4_IFADDR

/** No gateway: the route exists, but there is no IPv4 endpoint to send to (the RouteTable service's NO_GATEWAY). */
export const NO_GATEWAY = 0

export interface MirrorOptions {
  /** The tunnel device. */
  readonly ifindex: number
  /** Only this routing table; every table when undefined. */
  readonly table: number | undefined
}

/** The IPv4 endpoint a gateway stands for (see the module comment), or NO_GATEWAY. */
export const gatewayValue = (g: Netlink.Gateway | null): number => {
  if (g === null) return NO_GATEWAY
  const a = g.addr
  if (g.family === 4) return a.length === 4 ? ipv4FromBytes(a) : NO_GATEWAY
  if (a.length !== 16) return NO_GATEWAY
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return NO_GATEWAY
  // ::ffff:a.b.c.d (RFC 4291 2.5.5.2) or ::a.b.c.d (2.5.5.1, deprecated but what sit routes use)
  if ((a[10] === 0xff && a[11] === 0xff) || (a[10] === 0 && a[11] === 0)) return ipv4FromBytes(a, 12)
  return NO_GATEWAY
}

/** One route (one next hop of it) as the mirror holds it. */
export interface MirroredRoute {
  readonly family: 4 | 6
  /** "a.b.c.d/n" or "x::/n" */
  readonly prefix: string
  readonly table: number
  readonly tos: number
  readonly metric: number
  /** The IPv4 endpoint (u32), or NO_GATEWAY. */
  readonly gateway: number
}

interface Entry {
  readonly table: number
  readonly tos: number
  readonly metric: number
  /** The next hop's identity: its raw gateway ("" for none), so fe80::1 and fe80::2 stay two entries. */
  readonly hop: string
  readonly value: number
}

interface Bucket {
  readonly family: 4 | 6
  /** u32 for IPv4; 16 bytes, host bits zero, for IPv6 */
  readonly prefix4: number
  readonly prefix6: Uint8Array
  readonly length: number
  readonly entries: Array<Entry>
}

interface Hop {
  readonly hop: string
  readonly value: number
}

const EMPTY6 = new Uint8Array(16)

const hopKey = (g: Netlink.Gateway | null): string => (g === null ? "" : `${g.family}:${g.addr.join(".")}`)

const mask4 = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0)

const masked6 = (dst: Uint8Array, length: number): Uint8Array => {
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) {
    const bits = length - 8 * i
    out[i] = bits >= 8 ? dst[i]! : bits <= 0 ? 0 : dst[i]! & (0xff << (8 - bits))
  }
  return out
}

const better = (a: Entry, b: Entry): boolean => a.metric < b.metric || (a.metric === b.metric && a.table < b.table)

/**
 * One copy of the mirrored routes: the entries, and a trie per family holding, for each prefix, the value of its
 * preferred entry. Updates are synchronous and never throw; lookups are allocation-free.
 */
export class RouteSet {
  private readonly trie4 = new RouteTrie4()
  private readonly trie6 = new RouteTrie6()
  private readonly buckets4 = new Map<number, Bucket>()
  private readonly buckets6 = new Map<string, Bucket>()
  private entries4 = 0
  private entries6 = 0

  constructor(private readonly opts: MirrorOptions) {}

  /** IPv4 destination (u32) -> gateway, NO_GATEWAY or NO_ROUTE (-1). */
  lookup4(dst: number): number {
    return this.trie4.lookup(dst)
  }

  /** IPv6 destination (16 bytes at `offset`) -> gateway, NO_GATEWAY or NO_ROUTE (-1). */
  lookup6(bytes: Uint8Array, offset: number): number {
    return this.trie6.lookup(bytes, offset)
  }

  /** Routes held, per family (a multipath route counts once per next hop). */
  size(): { readonly v4: number; readonly v6: number } {
    return { v4: this.entries4, v6: this.entries6 }
  }

  clear(): void {
    this.trie4.clear()
    this.trie6.clear()
    this.buckets4.clear()
    this.buckets6.clear()
    this.entries4 = 0
    this.entries6 = 0
  }

  /**
   * Applies RTM_NEWROUTE / RTM_DELROUTE (`flags`: the message's nlmsg_flags, for NLM_F_REPLACE). True when the
   * mirror changed.
   */
  apply(type: number, flags: number, r: Netlink.RouteInfo): boolean {
    if ((r.flags & RTM_F_CLONED) !== 0) return false
    if (this.opts.table !== undefined && r.table !== this.opts.table) return false
    const hops = this.hopsOf(r)
    const replace = type === Netlink.RTM_NEWROUTE && (flags & Netlink.NLM_F_REPLACE) !== 0
    // A route that is not ours only matters when it replaces one of ours (`ip route replace ... dev eth0`: the
    // kernel sends the new route alone, with NLM_F_REPLACE, and no deletion of the old one).
    if (hops === null && !replace) return false
    if (type !== Netlink.RTM_NEWROUTE && type !== Netlink.RTM_DELROUTE) return false

    const bucket = this.bucketOf(r, hops !== null && type === Netlink.RTM_NEWROUTE)
    if (bucket === undefined) return false
    const entries = bucket.entries
    const before = entries.length
    let changed = false
    if (replace) {
      for (let i = entries.length - 1; i >= 0; i--) {
        const e = entries[i]!
        if (e.table === r.table && e.tos === r.tos && e.metric === r.priority) {
          entries.splice(i, 1)
          changed = true
        }
      }
    }
    if (hops !== null) {
      for (const h of hops) {
        const i = entries.findIndex((e) =>
          e.table === r.table && e.tos === r.tos && e.metric === r.priority && e.hop === h.hop
        )
        if (type === Netlink.RTM_NEWROUTE) {
          const entry: Entry = { table: r.table, tos: r.tos, metric: r.priority, hop: h.hop, value: h.value }
          if (i < 0) entries.push(entry)
          else if (entries[i]!.value !== h.value) entries[i] = entry
          else continue
          changed = true
        } else if (i >= 0) {
          entries.splice(i, 1)
          changed = true
        }
      }
    }
    if (bucket.family === 4) this.entries4 += entries.length - before
    else this.entries6 += entries.length - before
    if (changed || entries.length === 0) this.settle(bucket)
    return changed
  }

  /** Every route held, in no particular order. */
  routes(): Array<MirroredRoute> {
    const out: Array<MirroredRoute> = []
    for (const b of [...this.buckets4.values(), ...this.buckets6.values()]) {
      const prefix = b.family === 4 ? `${formatIpv4(b.prefix4)}/${b.length}` : `${formatIpv6(b.prefix6)}/${b.length}`
      for (const e of b.entries) {
        out.push({ family: b.family, prefix, table: e.table, tos: e.tos, metric: e.metric, gateway: e.value })
      }
    }
    return out
  }

  /** The next hops of `r` if it is a unicast route through the tunnel (all of them, for a multipath route). */
  private hopsOf(r: Netlink.RouteInfo): Array<Hop> | null {
    if (r.type !== Netlink.RTN_UNICAST) return null
    const ifindex = this.opts.ifindex
    if (r.nexthops.length === 0) {
      return r.oif === ifindex ? [{ hop: hopKey(r.gateway), value: gatewayValue(r.gateway) }] : null
    }
    const out: Array<Hop> = []
    for (const h of r.nexthops) {
      if (h.oif !== ifindex) return null
      out.push({ hop: hopKey(h.gateway), value: gatewayValue(h.gateway) })
    }
    return out
  }

  private bucketOf(r: Netlink.RouteInfo, create: boolean): Bucket | undefined {
    if (r.family === 4) {
      const prefix = (ipv4FromBytes(r.dst) & mask4(r.dstLen)) >>> 0
      // length * 2^32 + prefix: exact in a double, and no string per message
      const key = r.dstLen * 0x100000000 + prefix
      let b = this.buckets4.get(key)
      if (b === undefined && create) {
        b = { family: 4, prefix4: prefix, prefix6: EMPTY6, length: r.dstLen, entries: [] }
        this.buckets4.set(key, b)
      }
      return b
    }
    const prefix = masked6(r.dst, r.dstLen)
    const key = `${prefix.join(",")}/${r.dstLen}`
    let b = this.buckets6.get(key)
    if (b === undefined && create) {
      b = { family: 6, prefix4: 0, prefix6: prefix, length: r.dstLen, entries: [] }
      this.buckets6.set(key, b)
    }
    return b
  }

  /** Puts the preferred entry's value in the trie, or removes the prefix (and the bucket) when none is left. */
  private settle(b: Bucket): void {
    const entries = b.entries
    if (entries.length === 0) {
      if (b.family === 4) {
        this.trie4.remove(b.prefix4, b.length)
        this.buckets4.delete(b.length * 0x100000000 + b.prefix4)
      } else {
        this.trie6.remove(b.prefix6, b.length)
        this.buckets6.delete(`${b.prefix6.join(",")}/${b.length}`)
      }
      return
    }
    let best = entries[0]!
    for (let i = 1; i < entries.length; i++) if (better(entries[i]!, best)) best = entries[i]!
    if (b.family === 4) this.trie4.insert(b.prefix4, b.length, best.value)
    else this.trie6.insert(b.prefix6, b.length, best.value)
  }
}

/**
 * The notifications after which the kernel changes IPv4 routes of the tunnel without telling (see GROUPS): the
 * device went down or away, or lost an IPv4 address.
 */
export const silentFlush = (m: Netlink.Message, ifindex: number): NetlinkTracker.RedumpReason | null => {
  const p = m.payload
  const dv = new DataView(p.buffer, p.byteOffset, p.byteLength)
  if ((m.type === RTM_NEWLINK || m.type === RTM_DELLINK) && p.length >= IFINFOMSG_LEN) {
    // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32 (host order)
    if (dv.getInt32(4, LITTLE_ENDIAN) !== ifindex) return null
    return m.type === RTM_DELLINK || (dv.getUint32(8, LITTLE_ENDIAN) & IFF_UP) === 0 ? "silent-flush" : null
  }
  if (m.type === Netlink.RTM_DELADDR && p.length >= IFADDRMSG_LEN && p[0] === Netlink.AF_INET) {
    return dv.getUint32(4, LITTLE_ENDIAN) === ifindex ? "silent-flush" : null
  }
  return null
}

/** The mirror: two RouteSets, the live one and the one the next dump fills, and the dump/notification tracker. */
export interface RouteMirror {
  readonly tracker: NetlinkTracker.Tracker<RouteSet>
  readonly lookup4: (dst: number) => number
  readonly lookup6: (bytes: Uint8Array, offset: number) => number
  readonly size: () => { readonly v4: number; readonly v6: number }
  readonly routes: () => Array<MirroredRoute>
}

export const make = (opts: MirrorOptions): RouteMirror => {
  const first = new RouteSet(opts)
  // allocated at the first dump: a dump fills a table that is not in use, then replaces the live one at once
  let second: RouteSet | undefined
  const tracker = NetlinkTracker.make<Netlink.RouteInfo, RouteSet>({
    newType: Netlink.RTM_NEWROUTE,
    delType: Netlink.RTM_DELROUTE,
    parse: Netlink.parseRoute,
    fresh: (live) => {
      const spare = live === first ? (second ??= new RouteSet(opts)) : first
      spare.clear()
      return spare
    },
    apply: (set, type, flags, r) => set.apply(type, flags, r),
    trigger: (m) => silentFlush(m, opts.ifindex)
  }, first)
  return {
    tracker,
    lookup4: (dst) => tracker.table().lookup4(dst),
    lookup6: (bytes, offset) => tracker.table().lookup6(bytes, offset),
    size: () => tracker.table().size(),
    routes: () => tracker.table().routes()
  }
}
