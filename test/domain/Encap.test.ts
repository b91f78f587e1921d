import { describe, expect, it } from "@effect/vitest"
import { Drop } from "../../src/domain/Drops.js"
import type { EncapContext } from "../../src/domain/Encap.js"
import { encapBatch, HEADROOM } from "../../src/domain/Encap.js"
import { makeRateLimiter } from "../../src/domain/RateLimit.js"
import {
  dropsOf,
  encapContext,
  encapOut,
  fixV4Checksum,
  fromHex,
  hex,
  ip4,
  ip6,
  LOCAL,
  patterned,
  reassemble,
  refSum,
  REMOTE,
  v4Packet,
  v6Packet,
  withHeadroom
} from "./helpers.js"

const run = (packets: ReadonlyArray<Uint8Array>, over: Partial<EncapContext> = {}) => {
  const ctx = encapContext(over)
  const out = encapOut()
  encapBatch(packets, ctx, out)
  return { ctx, out, drops: dropsOf(out.drops) }
}

/** Encapsulates one packet that must come out as exactly one frame. */
const one = (packet: Uint8Array, over: Partial<EncapContext> = {}) => {
  const { drops, out } = run([withHeadroom(packet)], over)
  expect(drops).toEqual({})
  expect(out.frames.length).toBe(1)
  expect(out.replies.length).toBe(0)
  return out.frames[0]!
}

/** Outer header fields, read with DataView as a receiver would (RFC 791 3.1). */
const outer = (f: Uint8Array) => {
  const dv = new DataView(f.buffer, f.byteOffset, f.length)
  return {
    verIhl: f[0],
    tos: f[1],
    totalLength: dv.getUint16(2),
    id: dv.getUint16(4),
    df: (dv.getUint16(6) & 0x4000) !== 0,
    mf: (dv.getUint16(6) & 0x2000) !== 0,
    offset: (dv.getUint16(6) & 0x1fff) * 8,
    ttl: f[8],
    proto: f[9],
    checksumOk: refSum(f.subarray(0, 20)) === 0xffff,
    src: dv.getUint32(12),
    dst: dv.getUint32(16)
  }
}

const INNER_SRC = "203.0.113.10"
const INNER_DST = "203.0.113.20"

describe("encapBatch: golden packets", () => {
  it("4in4: an ICMP echo inside IPIP, built by hand from RFC 791 / RFC 2003 2", () => {
    // Inner: 45 | TOS 0x8b (AF41, CE) | len 36 | ID 1c46 | DF | TTL 63 | ICMP | cksum | 203.0.113.1 -> 203.0.113.2,
    // then echo request id 1 seq 1 "kiwitun!".
    const inner = fromHex(
      "45 8b 0024 1c46 4000 3f 01 a703 cb007101 cb007102" + "08 00 3294 0001 0001 6b69776974756e21"
    )
    // Outer: 45 | TOS 0x8a (AF41, CE sent as ECT(0)) | len 56 | ID 0 | DF copied | TTL 64 | proto 4 | cksum |
    // 192.0.2.1 -> 198.51.100.2.
    const frame = one(inner)
    expect(hex(frame)).toBe("458a00380000400040044e01c0000201c6336402" + hex(inner))
  })

  it("6in4: an ICMPv6 echo inside protocol 41, built by hand from RFC 8200 3 / RFC 4213 3.5, TTL inherited", () => {
    // Inner: version 6, traffic class 0xb9 (EF, ECT(1)), flow 0x12345, payload 12, next 58, hop 64,
    // 2001:db8:1::1 -> 2001:db8:2::2, echo request id 0x42 seq 7 "6in4".
    const inner = fromHex(
      "6b912345 000c 3a 40 20010db8000100000000000000000001 20010db8000200000000000000000002"
        + "80 00 7f5a 0042 0007 36696e34"
    )
    // Outer: 45 | TOS 0xb9 | len 72 | ID 0 | DF clear | TTL 64 (inherited) | proto 41 | cksum |
    // 192.0.2.1 -> 198.51.100.2.
    const frame = one(inner, { ttl: 0 })
    expect(hex(frame)).toBe("45b900480000000040298d9dc0000201c6336402" + hex(inner))
  })
})

describe("encapBatch: outer header", () => {
  it("writes the outer header into the headroom: the frame shares the packet's buffer (zero copy)", () => {
    const packet = withHeadroom(v4Packet())
    const before = packet.slice()
    const { out } = run([packet])
    const f = out.frames[0]!
    expect(f.buffer).toBe(packet.buffer)
    expect(f.byteOffset).toBe(packet.byteOffset - HEADROOM)
    expect(f.length).toBe(packet.length + 20)
    expect(f.subarray(20)).toEqual(before)
    const o = outer(f)
    expect(o).toMatchObject({ verIhl: 0x45, totalLength: packet.length + 20, id: 0, proto: 4, checksumOk: true })
    expect(o.src).toBe(ip4(LOCAL))
    expect(o.dst).toBe(ip4(REMOTE))
  })

  it("copies into a new buffer when the packet has no headroom, leaving the input untouched", () => {
    const packet = v4Packet()
    const before = packet.slice()
    const { out } = run([packet])
    const f = out.frames[0]!
    expect(f.buffer).not.toBe(packet.buffer)
    expect(packet).toEqual(before)
    expect(f.subarray(20)).toEqual(before)
    expect(outer(f).checksumOk).toBe(true)
  })

  it("leaves the source 0 for the kernel to fill when no local address is set", () => {
    expect(outer(one(v4Packet(), { local: 0 })).src).toBe(0)
  })

  it("sets the outer TTL from the context, or copies the inner TTL / hop limit when it is 0 (inherit)", () => {
    expect(outer(one(v4Packet({ ttl: 37 }), { ttl: 200 })).ttl).toBe(200)
    expect(outer(one(v4Packet({ ttl: 37 }), { ttl: 0 })).ttl).toBe(37)
    expect(outer(one(v6Packet({ hop: 99 }), { ttl: 0 })).ttl).toBe(99)
    expect(outer(one(v6Packet({ hop: 99 }), { ttl: 5 })).ttl).toBe(5)
  })

  it("never decrements the inner TTL / hop limit: TTL 1 goes through unchanged", () => {
    const p4 = v4Packet({ ttl: 1 })
    expect(one(p4).subarray(20)).toEqual(p4)
    const p6 = v6Packet({ hop: 1 })
    expect(one(p6).subarray(20)).toEqual(p6)
  })

  it("copies DSCP and ECN into the outer TOS, sending CE as ECT(0) (from IPv4 TOS and IPv6 traffic class)", () => {
    for (const dscp of [0, 0x2e << 2, 0x0a << 2, 0xfc]) {
      for (const ecn of [0, 1, 2, 3]) {
        const want = dscp | (ecn === 3 ? 2 : ecn)
        expect(outer(one(v4Packet({ tos: dscp | ecn }))).tos).toBe(want)
        expect(outer(one(v6Packet({ tc: dscp | ecn, flow: 0xfffff }))).tos).toBe(want)
      }
    }
  })

  it("copies DF from the inner IPv4 packet and clears it for 6in4 (RFC 4213 3.2.1)", () => {
    expect(outer(one(v4Packet({ df: true }))).df).toBe(true)
    expect(outer(one(v4Packet({ df: false }))).df).toBe(false)
    expect(outer(one(v6Packet())).df).toBe(false)
    expect(outer(one(v6Packet())).proto).toBe(41)
  })

  it("asks remoteOf with the inner packet and its version", () => {
    const seen: Array<[number, number]> = []
    const p4 = v4Packet({ dst: "203.0.113.77" })
    const p6 = v6Packet()
    run([p4, p6], {
      remoteOf: (inner, version) => {
        seen.push([version, inner.length])
        return ip4(REMOTE)
      }
    })
    expect(seen).toEqual([[4, p4.length], [6, p6.length]])
  })

  it("keeps the order of the packets and counts nothing for good ones", () => {
    const packets = [v4Packet({ id: 1 }), v6Packet({ flow: 2 }), v4Packet({ id: 3 })]
    const { drops, out } = run(packets)
    expect(drops).toEqual({})
    expect(out.frames.map((f) => f.subarray(20))).toEqual(packets)
  })
})

describe("encapBatch: drops", () => {
  const only = (packet: Uint8Array, reason: number, over: Partial<EncapContext> = {}) => {
    const { drops, out } = run([packet], over)
    expect(drops).toEqual({ [reason]: 1 })
    expect(out.frames).toEqual([])
  }

  it("drops versions other than 4 and 6, and empty packets", () => {
    only(Uint8Array.from(v4Packet(), (b, i) => (i === 0 ? 0x55 : b)), Drop.EncapBadVersion)
    only(Uint8Array.of(0x00), Drop.EncapBadVersion)
    only(new Uint8Array(0), Drop.EncapTruncated)
  })

  it("drops a version whose mode is off", () => {
    only(v4Packet(), Drop.EncapModeDisabled, { v4: false })
    only(v6Packet(), Drop.EncapModeDisabled, { v6: false })
    expect(run([v6Packet()], { v4: false }).out.frames.length).toBe(1)
  })

  it("drops packets whose length field does not match the bytes", () => {
    const p = v4Packet({ payload: patterned(30) })
    only(p.subarray(0, p.length - 1), Drop.EncapTruncated)
    only(Uint8Array.from([...p, 0]), Drop.EncapTruncated)
    only(p.subarray(0, 19), Drop.EncapTruncated)
    const q = v6Packet({ payload: patterned(30) })
    only(q.subarray(0, q.length - 1), Drop.EncapTruncated)
    only(Uint8Array.from([...q, 0]), Drop.EncapTruncated)
    only(q.subarray(0, 39), Drop.EncapTruncated)
  })

  it("drops an IPv4 header with IHL < 5 or longer than the packet", () => {
    only(fixV4Checksum(Uint8Array.from(v4Packet(), (b, i) => (i === 0 ? 0x44 : b))), Drop.EncapBadHeader)
    const tiny = v4Packet({ payload: new Uint8Array(4) })
    only(Uint8Array.from(tiny, (b, i) => (i === 0 ? 0x47 : b)), Drop.EncapBadHeader)
  })

  it("drops an IPv4 header with a wrong checksum", () => {
    only(Uint8Array.from(v4Packet(), (b, i) => (i === 11 ? b ^ 0x10 : b)), Drop.EncapBadChecksum)
  })

  it("accepts a valid IPv4 header with options", () => {
    const p = v4Packet({ options: Uint8Array.of(1, 1, 1, 0) })
    expect(one(p).subarray(20)).toEqual(p)
  })

  it("drops TTL / hop limit 0", () => {
    only(v4Packet({ ttl: 0 }), Drop.EncapTtlZero)
    only(v6Packet({ hop: 0 }), Drop.EncapTtlZero)
  })

  it("drops a packet whose outer destination would be its own source (RFC 2003 loop)", () => {
    only(v4Packet({ src: REMOTE }), Drop.EncapLoop)
  })

  it("counts every drop of a mixed batch and sends the rest", () => {
    const batch = [v4Packet({ ttl: 0 }), v4Packet(), v6Packet({ hop: 0 }), Uint8Array.of(0x70), v6Packet()]
    const { drops, out } = run(batch)
    expect(drops).toEqual({ [Drop.EncapTtlZero]: 2, [Drop.EncapBadVersion]: 1 })
    expect(out.frames.length).toBe(2)
  })
})

describe("encapBatch: no remote endpoint", () => {
  it("answers IPv4 with host unreachable (type 3 code 1) from the tunnel address and drops", () => {
    const p = v4Packet({ src: INNER_SRC, dst: INNER_DST })
    const { drops, out } = run([p], { remoteOf: () => 0, tunAddr4: ip4("203.0.113.1") })
    expect(drops).toEqual({ [Drop.EncapNoRoute]: 1 })
    expect(out.frames).toEqual([])
    expect(out.replies.length).toBe(1)
    const r = out.replies[0]!
    const o = outer(r)
    expect(o).toMatchObject({ proto: 1, ttl: 64, df: false, checksumOk: true })
    expect(o.src).toBe(ip4("203.0.113.1"))
    expect(o.dst).toBe(ip4(INNER_SRC))
    expect([r[20], r[21]]).toEqual([3, 1])
    expect(refSum(r.subarray(20))).toBe(0xffff)
    expect(r.subarray(28)).toEqual(p)
  })

  it("answers IPv6 with no route (type 1 code 0) from the tunnel address and drops", () => {
    const p = v6Packet({ src: "2001:db8:1::10", dst: "2001:db8:2::20" })
    const { drops, out } = run([p], { remoteOf: () => 0, tunAddr6: ip6("2001:db8::1") })
    expect(drops).toEqual({ [Drop.EncapNoRoute]: 1 })
    const r = out.replies[0]!
    expect(r.subarray(8, 24)).toEqual(ip6("2001:db8::1"))
    expect(r.subarray(24, 40)).toEqual(ip6("2001:db8:1::10"))
    expect([r[6], r[7], r[40], r[41]]).toEqual([58, 64, 1, 0])
    expect(r.subarray(48)).toEqual(p)
  })

  it("sends no error about an ICMP error, and takes no token for it", () => {
    const limiter = makeRateLimiter(1, 1, 0)
    const err = v4Packet({ proto: 1, payload: Uint8Array.of(3, 1, 0, 0, 0, 0, 0, 0) })
    const { drops, out } = run([err], { remoteOf: () => 0, icmpLimiter: limiter })
    expect(drops).toEqual({ [Drop.EncapNoRoute]: 1 })
    expect(out.replies).toEqual([])
    expect(limiter.tokens).toBe(1)
  })
})

describe("encapBatch: ICMP source and TTL", () => {
  const source4 = (packet: Uint8Array, over: Partial<EncapContext>) => {
    const { out } = run([packet], { remoteOf: () => 0, ...over })
    expect(out.replies.length).toBe(1)
    return outer(out.replies[0]!).src
  }
  const p = v4Packet({ src: INNER_SRC, dst: INNER_DST })

  it("uses the tunnel address, else the local address, else the offending destination", () => {
    expect(source4(p, { tunAddr4: ip4("203.0.113.1"), local: ip4(LOCAL) })).toBe(ip4("203.0.113.1"))
    expect(source4(p, { tunAddr4: 0, local: ip4(LOCAL) })).toBe(ip4(LOCAL))
    expect(source4(p, { tunAddr4: 0, local: 0 })).toBe(ip4(INNER_DST))
  })

  it("uses the offending destination when the offending source is this host's (the kernel drops martians)", () => {
    const own = v4Packet({ src: "203.0.113.1", dst: INNER_DST })
    expect(source4(own, { tunAddr4: ip4("203.0.113.1") })).toBe(ip4(INNER_DST))
    const local = v4Packet({ src: "192.0.2.55", dst: INNER_DST })
    const isLocal4 = (a: number) => a === ip4("192.0.2.55")
    expect(source4(local, { tunAddr4: ip4("203.0.113.1"), isLocal4 })).toBe(ip4(INNER_DST))
    expect(source4(p, { tunAddr4: ip4("203.0.113.1"), isLocal4 })).toBe(ip4("203.0.113.1"))
  })

  it("uses the IPv6 tunnel address, else the offending destination, never ::", () => {
    const q = v6Packet({ src: "2001:db8:1::10", dst: "2001:db8:2::20" })
    const src6 = (over: Partial<EncapContext>) =>
      run([q], { remoteOf: () => 0, ...over }).out.replies[0]!.subarray(8, 24)
    expect(src6({ tunAddr6: ip6("2001:db8::1") })).toEqual(ip6("2001:db8::1"))
    expect(src6({ tunAddr6: null })).toEqual(ip6("2001:db8:2::20"))
  })

  it("sends no Packet Too Big about a multicast packet without a unicast tunnel address to send it from", () => {
    const m = v6Packet({ src: "2001:db8:1::10", dst: "ff0e::101", payload: new Uint8Array(1400) })
    const small = { pathMtuOf: () => 1420 }
    expect(run([m], { ...small, tunAddr6: null }).out.replies).toEqual([])
    const r = run([m], { ...small, tunAddr6: ip6("2001:db8::1") }).out.replies
    expect(r.length).toBe(1)
    expect(r[0]![40]).toBe(2)
  })

  it("gives ICMP errors the configured TTL, or 64 when the TTL is inherited", () => {
    const ttlOf = (ttl: number) => run([p], { remoteOf: () => 0, ttl }).out.replies[0]![8]
    expect(ttlOf(17)).toBe(17)
    expect(ttlOf(0)).toBe(64)
    const hopOf = (ttl: number) => run([v6Packet()], { remoteOf: () => 0, ttl }).out.replies[0]![7]
    expect(hopOf(17)).toBe(17)
    expect(hopOf(0)).toBe(64)
  })
})

describe("encapBatch: ICMP rate limit", () => {
  it("sends at most the burst, counts the refused ones, and refills with time", () => {
    const limiter = makeRateLimiter(10, 2, 0)
    const packets = [v4Packet(), v6Packet(), v4Packet()]
    const first = run(packets, { remoteOf: () => 0, icmpLimiter: limiter, nowMs: 0 })
    expect(first.out.replies.length).toBe(2)
    expect(first.drops).toEqual({ [Drop.EncapNoRoute]: 3, [Drop.IcmpRateLimited]: 1 })
    // 10 per second: 100 ms later one token is back.
    const later = run(packets, { remoteOf: () => 0, icmpLimiter: limiter, nowMs: 100 })
    expect(later.out.replies.length).toBe(1)
    expect(later.drops).toEqual({ [Drop.EncapNoRoute]: 3, [Drop.IcmpRateLimited]: 2 })
  })

  it("limits Too Big errors with the same bucket", () => {
    const limiter = makeRateLimiter(0, 1, 0)
    const big = v4Packet({ df: true, payload: new Uint8Array(1000) })
    const { drops, out } = run([big, big], { pathMtuOf: () => 576, icmpLimiter: limiter })
    expect(out.replies.length).toBe(1)
    expect(drops).toEqual({ [Drop.EncapTooBig]: 2, [Drop.IcmpRateLimited]: 1 })
  })
})

describe("encapBatch: too big for the path", () => {
  it("sends a packet that exactly fills the path MTU", () => {
    const p = v4Packet({ df: true, payload: new Uint8Array(1000 - 20 - 20) })
    expect(one(p, { pathMtuOf: () => 1000 }).length).toBe(1000)
  })

  it("answers IPv4 with DF by fragmentation needed carrying the path MTU - 20, and drops", () => {
    const p = v4Packet({ src: INNER_SRC, dst: INNER_DST, df: true, payload: new Uint8Array(1000 - 20 - 20 + 1) })
    const { drops, out } = run([p], { pathMtuOf: () => 1000, tunAddr4: ip4("203.0.113.1") })
    expect(drops).toEqual({ [Drop.EncapTooBig]: 1 })
    expect(out.frames).toEqual([])
    const r = out.replies[0]!
    expect([r[20], r[21]]).toEqual([3, 4])
    expect((r[26]! << 8) | r[27]!).toBe(980)
    expect(refSum(r.subarray(20))).toBe(0xffff)
    expect(outer(r).dst).toBe(ip4(INNER_SRC))
  })

  it("answers IPv6 over a path of at least 1280 + 20 with Packet Too Big carrying the path MTU - 20", () => {
    const p = v6Packet({ payload: new Uint8Array(1400 - 40) })
    const { drops, out } = run([p], { pathMtuOf: () => 1400, tunAddr6: ip6("2001:db8::1") })
    expect(drops).toEqual({ [Drop.EncapTooBig]: 1 })
    expect(out.frames).toEqual([])
    const r = out.replies[0]!
    expect([r[40], r[41]]).toEqual([2, 0])
    expect(new DataView(r.buffer, r.byteOffset).getUint32(44)).toBe(1380)
  })

  it("answers IPv6 larger than 1280 over a smaller path with Packet Too Big carrying 1280", () => {
    const p = v6Packet({ payload: new Uint8Array(1281 - 40) })
    const { drops, out } = run([p], { pathMtuOf: () => 1000, tunAddr6: ip6("2001:db8::1") })
    expect(drops).toEqual({ [Drop.EncapTooBig]: 1 })
    expect(new DataView(out.replies[0]!.buffer, out.replies[0]!.byteOffset).getUint32(44)).toBe(1280)
  })

  it("fragments the outer packet of an IPv6 packet of at most 1280 bytes over a smaller path (RFC 4213 3.2)", () => {
    const p = v6Packet({ payload: patterned(1280 - 40) })
    const { drops, out } = run([p], { pathMtuOf: () => 1000 })
    expect(drops).toEqual({})
    expect(out.replies).toEqual([])
    expect(out.frames.length).toBe(2)
    for (const f of out.frames) {
      expect(f.length).toBeLessThanOrEqual(1000)
      expect(outer(f)).toMatchObject({ proto: 41, df: false, checksumOk: true })
    }
    expect(reassemble(out.frames)).toEqual(p)
  })

  it("fragments the outer packet of IPv4 without DF: 8-byte multiples, one nonzero ID, MF on all but the last", () => {
    const p = v4Packet({ tos: 0x2b, ttl: 50, payload: patterned(1480 - 20) })
    const ids: Array<number> = []
    const { drops, out } = run([p], {
      pathMtuOf: () => 576,
      nextFragmentId: () => {
        ids.push(0x1234)
        return 0x1234
      }
    })
    expect(drops).toEqual({})
    expect(ids.length).toBe(1)
    const chunk = (576 - 20) & ~7 // 552
    expect(out.frames.map((f) => f.length)).toEqual([572, 572, 20 + 1480 - 2 * chunk])
    out.frames.forEach((f, i) => {
      const o = outer(f)
      expect(o).toMatchObject({ id: 0x1234, df: false, mf: i < 2, offset: i * chunk, checksumOk: true, proto: 4 })
      expect(o).toMatchObject({ tos: 0x2a, ttl: 64, totalLength: f.length, src: ip4(LOCAL), dst: ip4(REMOTE) })
    })
    expect(reassemble(out.frames)).toEqual(p)
  })

  it("never uses fragment ID 0 (the kernel would give each fragment its own)", () => {
    const p = v4Packet({ payload: patterned(1000) })
    const { out } = run([p], { pathMtuOf: () => 576, nextFragmentId: () => 0x10000 })
    expect(out.frames.map((f) => outer(f).id)).toEqual([1, 1])
    expect(reassemble(out.frames)).toEqual(p)
  })

  it("does not believe a path MTU below 68", () => {
    const p = v4Packet({ payload: patterned(100) })
    const { out } = run([p], { pathMtuOf: () => 0 })
    expect(out.frames.every((f) => f.length <= 68)).toBe(true)
    expect(reassemble(out.frames)).toEqual(p)
  })
})
