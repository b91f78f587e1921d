import { describe, expect, it } from "@effect/vitest"
import { ipv4ToBytes, parseIpv4, parseIpv6 } from "../../src/domain/Address.js"
import * as Netlink from "../../src/domain/Netlink.js"
import { makeTracker, snapshotOf } from "../../src/layers/HostAddressesLive.js"

// The dump/notification bookkeeping of the address follower, fed with datagrams laid out like the kernel's
// (nlmsghdr + ifaddrmsg + IFA_LOCAL/IFA_ADDRESS); the socket side is covered by Live.test.ts.

const v4 = (text: string) => ipv4ToBytes(parseIpv4(text)!)
const v6 = (text: string) => parseIpv6(text)!

interface Addr {
  readonly ifindex: number
  readonly addr: Uint8Array
  readonly prefix: number
  readonly scope?: number
}

const addrMsg = (type: number, seq: number, a: Addr, flags = 0): Uint8Array => {
  const alen = a.addr.length
  const out = new Uint8Array(16 + 8 + 2 * (4 + alen))
  const dv = new DataView(out.buffer)
  dv.setUint32(0, out.length, true)
  dv.setUint16(4, type, true)
  dv.setUint16(6, flags, true)
  dv.setUint32(8, seq, true)
  out[16] = alen === 4 ? Netlink.AF_INET : Netlink.AF_INET6
  out[17] = a.prefix
  out[19] = a.scope ?? 0
  dv.setUint32(20, a.ifindex, true)
  let off = 24
  for (const t of [Netlink.IFA_ADDRESS, Netlink.IFA_LOCAL]) {
    dv.setUint16(off, 4 + alen, true)
    dv.setUint16(off + 2, t, true)
    out.set(a.addr, off + 4)
    off += 4 + alen
  }
  return out
}
const done = (seq: number, flags = Netlink.NLM_F_MULTI): Uint8Array => {
  const out = new Uint8Array(20)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, 20, true)
  dv.setUint16(4, Netlink.NLMSG_DONE, true)
  dv.setUint16(6, flags, true)
  dv.setUint32(8, seq, true)
  return out
}
const errorMsg = (seq: number, errno: number): Uint8Array => {
  const out = new Uint8Array(36)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, 36, true)
  dv.setUint16(4, Netlink.NLMSG_ERROR, true)
  dv.setUint32(8, seq, true)
  dv.setInt32(16, -errno, true)
  dv.setUint32(20, 16, true)
  dv.setUint16(24, Netlink.RTM_GETADDR, true)
  dv.setUint32(28, seq, true)
  return out
}
const concat = (...parts: Array<Uint8Array>) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) {
    out.set(p, off)
    off += p.length
  }
  return out
}

const TUN = 5
const LO4: Addr = { ifindex: 1, addr: v4("127.0.0.1"), prefix: 8, scope: Netlink.RT_SCOPE_HOST }
const TUN4: Addr = { ifindex: TUN, addr: v4("198.51.100.1"), prefix: 24 }
const TUN4B: Addr = { ifindex: TUN, addr: v4("198.51.100.77"), prefix: 24 }
const ETH4: Addr = { ifindex: 2, addr: v4("192.0.2.1"), prefix: 24 }
const LINK6: Addr = { ifindex: TUN, addr: v6("fe80::1"), prefix: 64, scope: Netlink.RT_SCOPE_LINK }
const GLOBAL6: Addr = { ifindex: TUN, addr: v6("2001:db8::1"), prefix: 64 }
const OTHER6: Addr = { ifindex: 2, addr: v6("2001:db8:9::1"), prefix: 64 }

const NEW = Netlink.RTM_NEWADDR
const DEL = Netlink.RTM_DELADDR
const ip4 = (text: string) => parseIpv4(text)!

describe("HostAddressesLive tracker", () => {
  it("takes the dump's result at NLMSG_DONE and builds the snapshot from it", () => {
    const t = makeTracker()
    t.beginDump(7)
    expect(t.dumping()).toBe(true)
    // a multi-part dump: two datagrams, the second ending with NLMSG_DONE
    expect(t.feed(concat(addrMsg(NEW, 7, LO4), addrMsg(NEW, 7, TUN4), addrMsg(NEW, 7, ETH4)))).toEqual({
      changed: false,
      redump: false
    })
    expect(snapshotOf(t.addresses(), TUN).local4.size).toBe(0)
    expect(t.feed(concat(addrMsg(NEW, 7, LINK6), addrMsg(NEW, 7, GLOBAL6), addrMsg(NEW, 7, OTHER6), done(7)))).toEqual({
      changed: true,
      redump: false
    })
    expect(t.dumping()).toBe(false)
    const s = snapshotOf(t.addresses(), TUN)
    expect(s.tun4).toBe(ip4("198.51.100.1"))
    // global preferred over the link-local one listed before it; another interface's address never counts
    expect(Array.from(s.tun6!)).toEqual(Array.from(GLOBAL6.addr))
    expect([...s.local4].sort()).toEqual([ip4("127.0.0.1"), ip4("192.0.2.1"), ip4("198.51.100.1")].sort())
  })

  it("follows notifications after the dump", () => {
    const t = makeTracker()
    t.beginDump(1)
    t.feed(concat(addrMsg(NEW, 1, TUN4), addrMsg(NEW, 1, LINK6), done(1)))
    expect(t.feed(addrMsg(NEW, 0, TUN4B))).toEqual({ changed: true, redump: false })
    expect(t.feed(addrMsg(DEL, 0, TUN4))).toEqual({ changed: true, redump: false })
    const s = snapshotOf(t.addresses(), TUN)
    expect(s.tun4).toBe(ip4("198.51.100.77"))
    expect([...s.local4]).toEqual([ip4("198.51.100.77")])
    // only a link-local on the tunnel: that one is used
    expect(Array.from(s.tun6!)).toEqual(Array.from(LINK6.addr))
  })

  it("replays notifications seen during a dump on top of its result", () => {
    const t = makeTracker()
    t.beginDump(3)
    t.feed(addrMsg(NEW, 3, TUN4)) // dumped before it was deleted
    t.feed(addrMsg(DEL, 0, TUN4)) // ... deleted while the dump ran
    t.feed(addrMsg(NEW, 0, ETH4)) // added behind the dump's position
    t.feed(done(3))
    const s = snapshotOf(t.addresses(), TUN)
    expect(s.tun4).toBe(0)
    expect([...s.local4]).toEqual([ip4("192.0.2.1")])
  })

  it("asks for a new dump when the kernel flags the dump as interrupted", () => {
    const t = makeTracker()
    t.beginDump(4)
    t.feed(addrMsg(NEW, 4, TUN4, Netlink.NLM_F_MULTI | Netlink.NLM_F_DUMP_INTR))
    expect(t.feed(done(4))).toEqual({ changed: true, redump: true })
  })

  it("an overrun re-dumps at once when idle, after the running dump otherwise", () => {
    const t = makeTracker()
    expect(t.overrun()).toBe(true)
    t.beginDump(5)
    expect(t.overrun()).toBe(false)
    expect(t.feed(done(5))).toEqual({ changed: true, redump: true })
    // and a fresh dump starts with a clean slate
    t.beginDump(6)
    expect(t.feed(done(6))).toEqual({ changed: true, redump: false })
  })

  it("a refused dump request is retried, and the previous table is kept", () => {
    const t = makeTracker()
    t.beginDump(1)
    t.feed(concat(addrMsg(NEW, 1, TUN4), done(1)))
    t.beginDump(2)
    expect(t.feed(errorMsg(2, 16))).toEqual({ changed: false, redump: true })
    expect(t.dumping()).toBe(false)
    expect(snapshotOf(t.addresses(), TUN).tun4).toBe(ip4("198.51.100.1"))
  })

  it("a datagram it cannot walk triggers a re-dump", () => {
    const t = makeTracker()
    expect(t.feed(new Uint8Array([1, 2, 3]))).toEqual({ changed: false, redump: true })
  })

  it("an empty table gives the empty snapshot", () => {
    expect(snapshotOf([], TUN)).toEqual({ tun4: 0, tun6: null, local4: new Set() })
  })
})
