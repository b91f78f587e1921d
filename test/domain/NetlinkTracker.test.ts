import { describe, expect, it } from "vitest"
import { parseCidr } from "../../src/domain/Address.js"
import * as Netlink from "../../src/domain/Netlink.js"
import * as NetlinkTracker from "../../src/domain/NetlinkTracker.js"

// The generic dump/notification bookkeeping with a minimal table (the set of route prefixes). The address and route
// mirrors built on it have their own tests (HostAddressesLive.test.ts, RouteMirror.test.ts).

type Table = Set<string>

const prefixOf = (r: Netlink.RouteInfo) => `${r.dst.join(".")}/${r.dstLen}`

const spec: NetlinkTracker.TableSpec<Netlink.RouteInfo, Table> = {
  newType: Netlink.RTM_NEWROUTE,
  delType: Netlink.RTM_DELROUTE,
  parse: Netlink.parseRoute,
  fresh: () => new Set(),
  apply: (t, type, _flags, r) => {
    const k = prefixOf(r)
    if (type === Netlink.RTM_NEWROUTE) {
      if (t.has(k)) return false
      t.add(k)
    } else if (!t.delete(k)) return false
    return true
  },
  trigger: (m) => (m.type === 16 ? "silent-flush" : null)
}

const routeMsg = (type: number, dst: string, seq: number, flags: number): Uint8Array => {
  const c = parseCidr(dst)!
  const out = Netlink.buildRoute({
    type: type as typeof Netlink.RTM_NEWROUTE,
    seq,
    route: {
      family: c.family,
      table: 254,
      type: Netlink.RTN_UNICAST,
      protocol: 3,
      scope: 0,
      tos: 0,
      dst: c.addr,
      dstLen: c.prefix,
      gateway: null,
      oif: 3,
      priority: 0,
      flags: 0,
      onlink: false,
      nexthops: []
    }
  })
  new DataView(out.buffer).setUint16(6, flags, true)
  return out
}
const part = (seq: number, dst: string) => routeMsg(Netlink.RTM_NEWROUTE, dst, seq, Netlink.NLM_F_MULTI)
const added = (dst: string, seq = 0) => routeMsg(Netlink.RTM_NEWROUTE, dst, seq, 0)
const deleted = (dst: string, seq = 0) => routeMsg(Netlink.RTM_DELROUTE, dst, seq, 0)

const control = (type: number, seq: number, flags: number, status = 0): Uint8Array => {
  const out = new Uint8Array(type === Netlink.NLMSG_ERROR ? 36 : 20)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, out.length, true)
  dv.setUint16(4, type, true)
  dv.setUint16(6, flags, true)
  dv.setUint32(8, seq, true)
  dv.setInt32(16, status, true)
  return out
}
const done = (seq: number, status = 0) => control(Netlink.NLMSG_DONE, seq, Netlink.NLM_F_MULTI, status)
const dumpError = (seq: number, errno: number) => control(Netlink.NLMSG_ERROR, seq, 0, -errno)

const tracked = (...prefixes: Array<string>) => {
  const t = NetlinkTracker.make(spec, new Set<string>())
  t.beginDump(1)
  for (const p of prefixes) t.feed(part(1, p))
  expect(t.feed(done(1))).toEqual({ changed: true, dumped: true, redump: null })
  return t
}
const contents = (t: NetlinkTracker.Tracker<Table>) => [...t.table()].sort()

describe("NetlinkTracker", () => {
  it("skips the remaining parts of an abandoned dump", () => {
    const t = tracked("198.51.100.0/24")
    t.beginDump(2)
    t.feed(part(2, "203.0.113.0/24"))
    // the dump is restarted (a stall); the first one's parts and DONE still arrive
    t.beginDump(3)
    expect(t.feed(part(2, "192.0.2.0/24"))).toEqual({ changed: false, dumped: false, redump: null })
    expect(t.feed(done(2))).toEqual({ changed: false, dumped: false, redump: null })
    expect(t.dumping()).toBe(true)
    t.feed(part(3, "203.0.113.0/24"))
    t.feed(done(3))
    expect(contents(t)).toEqual(["203.0.113.0/24"])
  })

  it("a deletion carrying the dump's seq is a notification (dumps carry no deletions)", () => {
    const t = tracked("198.51.100.0/24")
    t.beginDump(2)
    t.feed(part(2, "198.51.100.0/24"))
    // another process that happened to use seq 2 for its request
    expect(t.feed(deleted("198.51.100.0/24", 2)).changed).toBe(true)
    t.feed(done(2))
    expect(contents(t)).toEqual([])
  })

  it("a dump cut short (error status in NLMSG_DONE) keeps the previous table and asks again", () => {
    const t = tracked("198.51.100.0/24")
    t.beginDump(2)
    t.feed(part(2, "203.0.113.0/24"))
    expect(t.feed(done(2, -16))).toEqual({ changed: false, dumped: false, redump: "failed" })
    expect(t.dumping()).toBe(false)
    expect(contents(t)).toEqual(["198.51.100.0/24"])
  })

  it("a refused dump request keeps the previous table and asks again", () => {
    const t = tracked("198.51.100.0/24")
    t.beginDump(2)
    expect(t.feed(dumpError(2, 16))).toEqual({ changed: false, dumped: false, redump: "failed" })
    expect(contents(t)).toEqual(["198.51.100.0/24"])
  })

  it("NLMSG_OVERRUN is a loss like ENOBUFS", () => {
    const t = tracked()
    expect(t.feed(control(Netlink.NLMSG_OVERRUN, 0, 0)).redump).toBe("overrun")
    t.beginDump(2)
    expect(t.feed(control(Netlink.NLMSG_OVERRUN, 0, 0)).redump).toBe(null)
    expect(t.feed(done(2)).redump).toBe("overrun")
  })

  it("the table's trigger asks for a re-dump, deferred while one runs", () => {
    const t = tracked()
    expect(t.feed(control(16, 0, 0)).redump).toBe("silent-flush")
    t.beginDump(2)
    expect(t.feed(control(16, 0, 0)).redump).toBe(null)
    expect(t.feed(done(2)).redump).toBe("silent-flush")
  })

  it("the first reason to redo a dump is the one reported", () => {
    const t = tracked()
    t.beginDump(2)
    t.feed(routeMsg(Netlink.RTM_NEWROUTE, "192.0.2.0/24", 2, Netlink.NLM_F_MULTI | Netlink.NLM_F_DUMP_INTR))
    expect(t.overrun()).toBe(false)
    expect(t.feed(done(2)).redump).toBe("interrupted")
  })

  it("counts dumps, notifications and skipped messages", () => {
    const t = tracked("198.51.100.0/24")
    t.feed(added("203.0.113.0/24"))
    t.feed(deleted("203.0.113.0/24"))
    const bad = added("192.0.2.0/24").slice(0, 20)
    new DataView(bad.buffer).setUint32(0, 20, true)
    t.feed(bad)
    t.feed(new Uint8Array(3))
    expect(t.stats()).toEqual({ dumps: 1, notifications: 2, skipped: 2 })
  })
})
