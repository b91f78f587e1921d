import { describe, expect, it } from "vitest"
import { parseCidr, parseIpv4, parseIpv6 } from "../../src/domain/Address.js"
import * as Netlink from "../../src/domain/Netlink.js"
import * as RouteMirror from "../../src/domain/RouteMirror.js"

// The route mirror fed with rtnetlink datagrams laid out like the kernel's (Netlink.buildRoute, the inverse of the
// parser the mirror uses); the socket side is covered by RouteTableLive.test.ts against the real kernel.

const TUN = 7
const ETH = 2
const MAIN = 254
const NO_ROUTE = -1
const NO_GATEWAY = 0

const ip4 = (text: string): number => {
  const a = parseIpv4(text)
  if (a === undefined) throw new Error(`bad test address ${text}`)
  return a
}
const ip6 = (text: string): Uint8Array => {
  const a = parseIpv6(text)
  if (a === undefined) throw new Error(`bad test address ${text}`)
  return a
}
const gw = (text: string): Netlink.Gateway => {
  const c = parseCidr(text)
  if (c === undefined) throw new Error(`bad test gateway ${text}`)
  return { family: c.family, addr: c.addr }
}

interface Spec {
  readonly dst: string
  readonly via?: string
  readonly oif?: number
  readonly table?: number
  readonly metric?: number
  readonly type?: number
  readonly protocol?: number
  readonly flags?: number
  readonly nexthops?: ReadonlyArray<{ readonly oif: number; readonly via?: string }>
}

const route = (s: Spec): Netlink.RouteInfo => {
  const c = parseCidr(s.dst)
  if (c === undefined) throw new Error(`bad test prefix ${s.dst}`)
  return {
    family: c.family,
    table: s.table ?? MAIN,
    type: s.type ?? Netlink.RTN_UNICAST,
    protocol: s.protocol ?? 3, // RTPROT_BOOT, what `ip route add` sets
    scope: Netlink.RT_SCOPE_UNIVERSE,
    tos: 0,
    dst: c.addr,
    dstLen: c.prefix,
    gateway: s.via === undefined ? null : gw(s.via),
    oif: s.nexthops === undefined ? (s.oif ?? TUN) : 0,
    priority: s.metric ?? (c.family === 6 ? 1024 : 0),
    flags: s.flags ?? 0,
    onlink: false,
    nexthops: (s.nexthops ?? []).map((h) => ({ oif: h.oif, flags: 0, gateway: h.via === undefined ? null : gw(h.via) }))
  }
}

/** One message as the kernel sends it: dump parts carry NLM_F_MULTI, notifications their request's flags. */
const msg = (type: number, s: Spec, seq = 0, flags = 0): Uint8Array => {
  const out = Netlink.buildRoute({ type: type as typeof Netlink.RTM_NEWROUTE, seq, route: route(s) })
  new DataView(out.buffer).setUint16(6, flags, true)
  return out
}
const add = (s: Spec) => msg(Netlink.RTM_NEWROUTE, s, 0, Netlink.NLM_F_CREATE | Netlink.NLM_F_EXCL)
const replace = (s: Spec) => msg(Netlink.RTM_NEWROUTE, s, 0, Netlink.NLM_F_REPLACE)
const del = (s: Spec) => msg(Netlink.RTM_DELROUTE, s)
const dumped = (seq: number, s: Spec, flags = Netlink.NLM_F_MULTI) => msg(Netlink.RTM_NEWROUTE, s, seq, flags)

const done = (seq: number, status = 0): Uint8Array => {
  const out = new Uint8Array(20)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, 20, true)
  dv.setUint16(4, Netlink.NLMSG_DONE, true)
  dv.setUint16(6, Netlink.NLM_F_MULTI, true)
  dv.setUint32(8, seq, true)
  dv.setInt32(16, status, true)
  return out
}
const concat = (...parts: Array<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + Netlink.align4(p.length), 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += Netlink.align4(p.length)
  }
  return out
}

/** A mirror that has read a dump of `routes` (seq 1). */
const mirrorWith = (routes: ReadonlyArray<Spec>, table?: number) => {
  const m = RouteMirror.make({ ifindex: TUN, table })
  m.tracker.beginDump(1)
  const r = m.tracker.feed(concat(...routes.map((s) => dumped(1, s)), done(1)))
  expect(r).toEqual({ changed: true, dumped: true, redump: null })
  return m
}

const look4 = (m: RouteMirror.RouteMirror, text: string) => m.lookup4(ip4(text))
const look6 = (m: RouteMirror.RouteMirror, text: string) => {
  // at an offset, as in a packet (the destination of an IPv6 header is at 24)
  const packet = new Uint8Array(40)
  packet.set(ip6(text), 24)
  return m.lookup6(packet, 24)
}

describe("RouteMirror: what counts", () => {
  it("counts unicast routes only", () => {
    const m = mirrorWith([
      { dst: "198.51.100.0/24", via: "192.0.2.2" },
      { dst: "203.0.113.0/24", via: "192.0.2.3", type: Netlink.RTN_BLACKHOLE },
      { dst: "203.0.113.1/32", type: Netlink.RTN_LOCAL, table: 255 },
      { dst: "2001:db8:5::/48", type: Netlink.RTN_UNREACHABLE }
    ])
    expect(look4(m, "198.51.100.7")).toBe(ip4("192.0.2.2"))
    expect(look4(m, "203.0.113.9")).toBe(NO_ROUTE)
    expect(look4(m, "203.0.113.1")).toBe(NO_ROUTE)
    expect(look6(m, "2001:db8:5::1")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 1, v6: 0 })
  })

  it("counts routes through the tunnel only; a multipath route only if every next hop is", () => {
    const m = mirrorWith([
      { dst: "198.51.100.0/24", via: "192.0.2.2", oif: ETH },
      { dst: "203.0.113.0/25", nexthops: [{ oif: TUN, via: "192.0.2.4" }, { oif: TUN, via: "192.0.2.5" }] },
      { dst: "203.0.113.128/25", nexthops: [{ oif: TUN, via: "192.0.2.6" }, { oif: ETH, via: "192.0.2.7" }] }
    ])
    expect(look4(m, "198.51.100.7")).toBe(NO_ROUTE)
    // the first next hop's gateway
    expect(look4(m, "203.0.113.1")).toBe(ip4("192.0.2.4"))
    expect(look4(m, "203.0.113.200")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 2, v6: 0 })
  })

  it("ignores the kernel's cached clones (PMTU exceptions)", () => {
    const m = mirrorWith([])
    m.tracker.feed(add({ dst: "198.51.100.9/32", via: "192.0.2.9", flags: 0x200 }))
    expect(look4(m, "198.51.100.9")).toBe(NO_ROUTE)
  })

  it("takes routes from every table, or from the one given", () => {
    const routes: Array<Spec> = [
      { dst: "198.51.100.0/24", via: "192.0.2.2" },
      { dst: "203.0.113.0/24", via: "192.0.2.3", table: 44 },
      { dst: "2001:db8:1::/48", via: "::ffff:192.0.2.4", table: 1000 }
    ]
    const all = mirrorWith(routes)
    expect(look4(all, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    expect(look4(all, "203.0.113.1")).toBe(ip4("192.0.2.3"))
    expect(look6(all, "2001:db8:1::1")).toBe(ip4("192.0.2.4"))

    const only44 = mirrorWith(routes, 44)
    expect(look4(only44, "198.51.100.1")).toBe(NO_ROUTE)
    expect(look4(only44, "203.0.113.1")).toBe(ip4("192.0.2.3"))
    expect(look6(only44, "2001:db8:1::1")).toBe(NO_ROUTE)
    // notifications for other tables are ignored too
    only44.tracker.feed(add({ dst: "192.0.2.128/25", via: "192.0.2.5" }))
    expect(look4(only44, "192.0.2.130")).toBe(NO_ROUTE)
    // a table id above 255 (RTA_TABLE) is matched in full
    const only1000 = mirrorWith(routes, 1000)
    expect(look6(only1000, "2001:db8:1::1")).toBe(ip4("192.0.2.4"))
    expect(only1000.size()).toEqual({ v4: 0, v6: 1 })
  })

  it("the kernel's routes for the tunnel's own prefixes have no gateway", () => {
    const m = mirrorWith([
      { dst: "198.51.100.0/24", protocol: 2 }, // proto kernel, scope link in reality
      { dst: "198.51.100.128/25", via: "192.0.2.2" },
      { dst: "2001:db8:1::/64", protocol: 2, metric: 256 },
      { dst: "fe80::/64", protocol: 2, metric: 256 }
    ])
    expect(look4(m, "198.51.100.7")).toBe(NO_GATEWAY)
    expect(look4(m, "198.51.100.200")).toBe(ip4("192.0.2.2"))
    expect(look6(m, "2001:db8:1::9")).toBe(NO_GATEWAY)
    expect(look6(m, "fe80::2")).toBe(NO_GATEWAY)
    expect(look6(m, "2001:db8:2::9")).toBe(NO_ROUTE)
  })

  it("honours a default route through the tunnel (AMPRNet: table 44, onlink)", () => {
    const m = mirrorWith([
      { dst: "0.0.0.0/0", via: "192.0.2.1", table: 44, flags: Netlink.RTNH_F_ONLINK },
      { dst: "0.0.0.0/0", via: "203.0.113.254", oif: ETH },
      { dst: "198.51.100.0/24", via: "192.0.2.2", table: 44 },
      { dst: "::/0", via: "::ffff:192.0.2.1", flags: Netlink.RTNH_F_ONLINK }
    ])
    expect(look4(m, "203.0.113.77")).toBe(ip4("192.0.2.1"))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    expect(look6(m, "2001:db8:77::1")).toBe(ip4("192.0.2.1"))
  })
})

describe("RouteMirror: gateways", () => {
  const cases: ReadonlyArray<[string, Spec, string, number]> = [
    ["IPv4 via", { dst: "198.51.100.0/24", via: "192.0.2.2" }, "198.51.100.1", ip4("192.0.2.2")],
    ["IPv6 via ::ffff:a.b.c.d", { dst: "2001:db8:1::/48", via: "::ffff:192.0.2.3" }, "2001:db8:1::1", ip4("192.0.2.3")],
    ["IPv6 via ::a.b.c.d (sit)", { dst: "2001:db8:2::/48", via: "::192.0.2.4" }, "2001:db8:2::1", ip4("192.0.2.4")],
    ["IPv6 via inet a.b.c.d (RTA_VIA)", { dst: "2001:db8:3::/48", via: "192.0.2.5" }, "2001:db8:3::1", ip4("192.0.2.5")
    ],
    ["IPv6 via fe80::1", { dst: "2001:db8:4::/48", via: "fe80::1" }, "2001:db8:4::1", NO_GATEWAY],
    ["IPv6 via 2001:db8::c000:206", { dst: "2001:db8:5::/48", via: "2001:db8::c000:206" }, "2001:db8:5::1", NO_GATEWAY
    ],
    ["IPv6 via ::1:ffff:c000:207", { dst: "2001:db8:6::/48", via: "::1:ffff:c000:207" }, "2001:db8:6::1", NO_GATEWAY],
    ["IPv4 without via", { dst: "203.0.113.0/24" }, "203.0.113.1", NO_GATEWAY]
  ]
  for (const [name, spec, dst, want] of cases) {
    it(name, () => {
      const m = mirrorWith([spec])
      expect(dst.includes(":") ? look6(m, dst) : look4(m, dst)).toBe(want)
    })
  }

  it("an IPv4 gateway of an IPv6 route travels as RTA_VIA", () => {
    const bytes = msg(Netlink.RTM_NEWROUTE, { dst: "2001:db8:3::/48", via: "192.0.2.5" })
    const attrs = Netlink.attributes(bytes.subarray(16 + 12))
    expect(attrs._tag === "Right" && attrs.right.map((a) => a.type)).toContain(Netlink.RTA_VIA)
    expect(attrs._tag === "Right" && attrs.right.map((a) => a.type)).not.toContain(Netlink.RTA_GATEWAY)
  })
})

describe("RouteMirror: changes", () => {
  it("adds, replaces and deletes", () => {
    const m = mirrorWith([])
    expect(m.tracker.feed(add({ dst: "198.51.100.0/24", via: "192.0.2.2" }))).toEqual({
      changed: true,
      dumped: false,
      redump: null
    })
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "192.0.2.3" }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.3"))
    expect(m.size()).toEqual({ v4: 1, v6: 0 })
    // the deletion names the route as it now is
    expect(m.tracker.feed(del({ dst: "198.51.100.0/24", via: "192.0.2.3" })).changed).toBe(true)
    expect(look4(m, "198.51.100.1")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 0, v6: 0 })
    // deleting what is not there changes nothing
    expect(m.tracker.feed(del({ dst: "198.51.100.0/24", via: "192.0.2.3" })).changed).toBe(false)
  })

  it("a replace that moves the route to another device removes it", () => {
    const m = mirrorWith([{ dst: "198.51.100.0/24", via: "192.0.2.2" }, { dst: "2001:db8:1::/48", via: "::192.0.2.2" }])
    expect(m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "203.0.113.1", oif: ETH })).changed).toBe(true)
    expect(look4(m, "198.51.100.1")).toBe(NO_ROUTE)
    m.tracker.feed(replace({ dst: "2001:db8:1::/48", via: "fe80::1", oif: ETH }))
    expect(look6(m, "2001:db8:1::1")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 0, v6: 0 })
  })

  it("a route added elsewhere without NLM_F_REPLACE leaves ours alone, and so does a replace in another table", () => {
    const m = mirrorWith([{ dst: "198.51.100.0/24", via: "192.0.2.2" }])
    m.tracker.feed(add({ dst: "198.51.100.0/24", via: "203.0.113.1", oif: ETH }))
    m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "203.0.113.1", oif: ETH, table: 44 }))
    m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "203.0.113.1", oif: ETH, metric: 10 }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
  })

  it("the same prefix in two tables: the lower metric wins, then the lower table id", () => {
    const m = mirrorWith([
      { dst: "198.51.100.0/24", via: "192.0.2.1", table: 44, metric: 10 },
      { dst: "198.51.100.0/24", via: "192.0.2.2", metric: 20 }
    ])
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.1"))
    expect(m.size()).toEqual({ v4: 2, v6: 0 })
    m.tracker.feed(add({ dst: "198.51.100.0/24", via: "192.0.2.3", table: 100, metric: 5 }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.3"))
    m.tracker.feed(del({ dst: "198.51.100.0/24", via: "192.0.2.3", table: 100, metric: 5 }))
    m.tracker.feed(del({ dst: "198.51.100.0/24", via: "192.0.2.1", table: 44, metric: 10 }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    // equal metrics: table 44 before main (254), whatever the order they came in
    m.tracker.feed(add({ dst: "198.51.100.0/24", via: "192.0.2.4", table: 44, metric: 20 }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.4"))
    // a replace in one table leaves the other's entry alone
    m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "192.0.2.5", metric: 20 }))
    expect(m.routes().map((r) => [r.table, r.gateway]).sort()).toEqual([
      [254, ip4("192.0.2.5")],
      [44, ip4("192.0.2.4")]
    ])
  })

  it("routes that differ only in their next hop coexist; deleting one keeps the other", () => {
    const m = mirrorWith([])
    m.tracker.feed(add({ dst: "2001:db8:1::/48", via: "::ffff:192.0.2.1" }))
    m.tracker.feed(msg(Netlink.RTM_NEWROUTE, { dst: "2001:db8:1::/48", via: "::ffff:192.0.2.2" }, 0, 0x800))
    expect(m.size()).toEqual({ v4: 0, v6: 2 })
    expect(look6(m, "2001:db8:1::1")).toBe(ip4("192.0.2.1"))
    m.tracker.feed(del({ dst: "2001:db8:1::/48", via: "::ffff:192.0.2.1" }))
    expect(look6(m, "2001:db8:1::1")).toBe(ip4("192.0.2.2"))
    // a multipath deletion removes each of its next hops
    const hops = [{ oif: TUN, via: "192.0.2.8" }, { oif: TUN, via: "192.0.2.9" }]
    const multipath = { dst: "203.0.113.0/24", nexthops: hops }
    m.tracker.feed(add(multipath))
    expect(m.size()).toEqual({ v4: 2, v6: 1 })
    m.tracker.feed(del(multipath))
    expect(look4(m, "203.0.113.1")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 0, v6: 1 })
  })

  it("longest prefix wins across tables", () => {
    const m = mirrorWith([
      { dst: "0.0.0.0/0", via: "192.0.2.1", table: 44 },
      { dst: "198.51.100.0/24", via: "192.0.2.2" },
      { dst: "198.51.100.64/26", via: "192.0.2.3", table: 44 },
      { dst: "198.51.100.66/32", via: "192.0.2.4", metric: 100 }
    ])
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    expect(look4(m, "198.51.100.65")).toBe(ip4("192.0.2.3"))
    expect(look4(m, "198.51.100.66")).toBe(ip4("192.0.2.4"))
    expect(look4(m, "192.0.2.200")).toBe(ip4("192.0.2.1"))
  })
})

describe("RouteMirror: re-dumps", () => {
  it("after lost notifications, a re-dump replaces the table", () => {
    const m = mirrorWith([
      { dst: "198.51.100.0/24", via: "192.0.2.2" },
      { dst: "2001:db8:1::/48", via: "::192.0.2.2" }
    ])
    // ENOBUFS while idle: dump now
    expect(m.tracker.overrun()).toBe(true)
    m.tracker.beginDump(2)
    // the live table keeps answering while the dump runs
    m.tracker.feed(dumped(2, { dst: "203.0.113.0/24", via: "192.0.2.3" }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
    expect(look4(m, "203.0.113.1")).toBe(NO_ROUTE)
    expect(m.tracker.feed(done(2))).toEqual({ changed: true, dumped: true, redump: null })
    // what the lost notifications removed is gone, what they added is there
    expect(look4(m, "198.51.100.1")).toBe(NO_ROUTE)
    expect(look6(m, "2001:db8:1::1")).toBe(NO_ROUTE)
    expect(look4(m, "203.0.113.1")).toBe(ip4("192.0.2.3"))
    expect(m.size()).toEqual({ v4: 1, v6: 0 })
    // and the next re-dump reuses the first table without leftovers
    m.tracker.beginDump(3)
    m.tracker.feed(concat(dumped(3, { dst: "192.0.2.128/25", via: "192.0.2.4" }), done(3)))
    expect(m.routes()).toEqual([
      { family: 4, prefix: "192.0.2.128/25", table: MAIN, tos: 0, metric: 0, gateway: ip4("192.0.2.4") }
    ])
    expect(look4(m, "203.0.113.1")).toBe(NO_ROUTE)
  })

  it("an overrun during a dump redoes it after NLMSG_DONE", () => {
    const m = mirrorWith([])
    m.tracker.beginDump(2)
    expect(m.tracker.overrun()).toBe(false)
    expect(m.tracker.feed(done(2))).toEqual({ changed: true, dumped: true, redump: "overrun" })
  })

  it("an interrupted dump (NLM_F_DUMP_INTR) is redone", () => {
    const m = mirrorWith([])
    m.tracker.beginDump(2)
    const flags = Netlink.NLM_F_MULTI | Netlink.NLM_F_DUMP_INTR
    m.tracker.feed(dumped(2, { dst: "198.51.100.0/24", via: "192.0.2.2" }, flags))
    expect(m.tracker.feed(done(2))).toEqual({ changed: true, dumped: true, redump: "interrupted" })
  })

  it("replays notifications seen during a dump on top of its result", () => {
    const m = mirrorWith([{ dst: "198.51.100.0/24", via: "192.0.2.2" }])
    m.tracker.beginDump(2)
    m.tracker.feed(dumped(2, { dst: "198.51.100.0/24", via: "192.0.2.2" })) // read before it was replaced
    m.tracker.feed(replace({ dst: "198.51.100.0/24", via: "192.0.2.9" }))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.9")) // the live table follows at once
    m.tracker.feed(add({ dst: "203.0.113.0/24", via: "192.0.2.3" })) // behind the dump's position
    m.tracker.feed(dumped(2, { dst: "2001:db8:1::/48", via: "::ffff:192.0.2.4" }))
    m.tracker.feed(del({ dst: "2001:db8:1::/48", via: "::ffff:192.0.2.4" })) // deleted after it was read
    m.tracker.feed(done(2))
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.9"))
    expect(look4(m, "203.0.113.1")).toBe(ip4("192.0.2.3"))
    expect(look6(m, "2001:db8:1::1")).toBe(NO_ROUTE)
    expect(m.size()).toEqual({ v4: 2, v6: 0 })
  })

  it("re-dumps when the tunnel goes down or loses an IPv4 address (the kernel flushes without notifying)", () => {
    const m = mirrorWith([])
    const link = (type: number, ifindex: number, flags: number) => {
      const out = new Uint8Array(32)
      const dv = new DataView(out.buffer)
      dv.setUint32(0, 32, true)
      dv.setUint16(4, type, true)
      dv.setInt32(20, ifindex, true)
      dv.setUint32(24, flags, true)
      return out
    }
    const delAddr = (family: number, ifindex: number) => {
      const out = new Uint8Array(24)
      const dv = new DataView(out.buffer)
      dv.setUint32(0, 24, true)
      dv.setUint16(4, Netlink.RTM_DELADDR, true)
      out[16] = family
      dv.setUint32(20, ifindex, true)
      return out
    }
    const RTM_NEWLINK = 16
    const RTM_DELLINK = 17
    const UP_RUNNING = 0x41
    expect(m.tracker.feed(link(RTM_NEWLINK, TUN, UP_RUNNING)).redump).toBe(null)
    expect(m.tracker.feed(link(RTM_NEWLINK, ETH, UP_RUNNING)).redump).toBe(null)
    expect(m.tracker.feed(link(RTM_NEWLINK, ETH, 0)).redump).toBe(null)
    expect(m.tracker.feed(link(RTM_NEWLINK, TUN, 0x40)).redump).toBe("silent-flush")
    expect(m.tracker.feed(link(RTM_DELLINK, TUN, 0)).redump).toBe("silent-flush")
    expect(m.tracker.feed(delAddr(Netlink.AF_INET, TUN)).redump).toBe("silent-flush")
    expect(m.tracker.feed(delAddr(Netlink.AF_INET, ETH)).redump).toBe(null)
    expect(m.tracker.feed(delAddr(Netlink.AF_INET6, TUN)).redump).toBe(null)
  })
})

describe("RouteMirror: bad input", () => {
  it("skips and counts messages that do not decode, and keeps going", () => {
    const m = mirrorWith([])
    const good = add({ dst: "198.51.100.0/24", via: "192.0.2.2" })
    // an rtmsg cut short, then an attribute whose length runs past the message
    const short = good.slice(0, 24)
    new DataView(short.buffer).setUint32(0, 24, true)
    const overlong = good.slice()
    new DataView(overlong.buffer).setUint16(28, 200, true)
    // an MPLS route (AF_MPLS 28): a family nobody mirrors, not an error
    const mpls = good.slice(0, 28)
    new DataView(mpls.buffer).setUint32(0, 28, true)
    mpls[16] = 28
    const before = m.tracker.stats().skipped
    expect(m.tracker.feed(concat(short, overlong, mpls, good)).changed).toBe(true)
    expect(m.tracker.stats().skipped - before).toBe(2)
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
  })

  it("a datagram that does not split into messages is counted and triggers a re-dump", () => {
    const m = mirrorWith([])
    expect(m.tracker.feed(new Uint8Array([40, 0, 0, 0, 24, 0]))).toEqual({
      changed: false,
      dumped: false,
      redump: "unreadable"
    })
    expect(m.tracker.stats().skipped).toBe(1)
  })

  it("never throws on arbitrary bytes", () => {
    const m = mirrorWith([{ dst: "198.51.100.0/24", via: "192.0.2.2" }])
    const base = add({ dst: "2001:db8:1::/48", nexthops: [{ oif: TUN, via: "::ffff:192.0.2.1" }] })
    // every single-byte corruption of a valid message, each value class
    for (let i = 0; i < base.length; i++) {
      for (const v of [0, 1, 0x7f, 0xff]) {
        const b = base.slice()
        b[i] = v
        expect(() => m.tracker.feed(b)).not.toThrow()
      }
    }
    expect(look4(m, "198.51.100.1")).toBe(ip4("192.0.2.2"))
  })
})

describe("RouteMirror.gatewayValue", () => {
  it("maps the gateway forms", () => {
    expect(RouteMirror.gatewayValue(null)).toBe(NO_GATEWAY)
    expect(RouteMirror.gatewayValue(gw("192.0.2.1"))).toBe(ip4("192.0.2.1"))
    expect(RouteMirror.gatewayValue(gw("::ffff:192.0.2.1"))).toBe(ip4("192.0.2.1"))
    expect(RouteMirror.gatewayValue(gw("::192.0.2.1"))).toBe(ip4("192.0.2.1"))
    expect(RouteMirror.gatewayValue(gw("fe80::1"))).toBe(NO_GATEWAY)
    expect(RouteMirror.gatewayValue(gw("64:ff9b::192.0.2.1"))).toBe(NO_GATEWAY)
  })
})
