/**
 * Property tests of the packet builders and parsers that the files next to this one cover with examples or fewer
 * cases: the IPv4/IPv6 header builders with any field values, the ICMP error builders on any offending bytes,
 * encapsulation of truncated packets, decapsulation of bit-flipped frames, the virtio_net_hdr codec, and software
 * segmentation of truncated or bit-flipped super-packets. 10,000 cases each; every input is behind `guarded`, which
 * turns a read or write outside it into a failure.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Arena from "../../src/domain/Arena.js"
import { decapBatch } from "../../src/domain/Decap.js"
import { Drop, makeCounts } from "../../src/domain/Drops.js"
import { encapBatch } from "../../src/domain/Encap.js"
import * as Gso from "../../src/domain/Gso.js"
import * as Icmp from "../../src/domain/Icmp.js"
import * as Ipv4 from "../../src/domain/Ipv4.js"
import * as Ipv6 from "../../src/domain/Ipv6.js"
import * as VirtioNet from "../../src/domain/VirtioNet.js"
import {
  arbV4Packet,
  arbV6Packet,
  encapContext,
  encapOut,
  guarded,
  ip4,
  ip6,
  LOCAL,
  refSum,
  REMOTE,
  withHeadroom
} from "./helpers.js"
import { ACK, arbFlow, FIN, PSH, superFrame, type TcpSpec } from "./offloadRef.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const
/** For the properties over longer packets: every byte goes through the guard, which is slow. */
const SLOW_RUNS = { ...RUNS, timeout: 60_000 } as const

/** Any number a caller might pass for a field: in range, just out of it, negative, huge. */
const anyField = (bits: number) =>
  fc.oneof(
    fc.integer({ min: 0, max: 2 ** bits - 1 }),
    fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    fc.constantFrom(2 ** bits, -1, 0xffffffff)
  )
const mask = (value: number, bits: number) => (bits === 32 ? value >>> 0 : value & (2 ** bits - 1))

const bytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max })

/** Byte equality without the deep-equality machinery, which is slow on long arrays. */
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b))

describe("Ipv4.build and Ipv6.build: properties", () => {
  it.prop("Ipv4: parse(build(h, p)) is h with every field cut to its width and options padded", {
    tos: anyField(8),
    id: anyField(16),
    df: fc.boolean(),
    mf: fc.boolean(),
    offset: anyField(13),
    ttl: anyField(8),
    proto: anyField(8),
    src: anyField(32),
    dst: anyField(32),
    options: bytes(0, 48),
    payload: bytes(0, 200)
  }, (h) => {
    const p = Ipv4.build({
      tos: h.tos,
      id: h.id,
      dontFragment: h.df,
      moreFragments: h.mf,
      fragmentOffset: h.offset,
      ttl: h.ttl,
      protocol: h.proto,
      src: h.src,
      dst: h.dst,
      options: h.options
    }, h.payload)
    const optionLength = Math.min(40, (h.options.length + 3) & ~3)
    const padded = new Uint8Array(optionLength)
    padded.set(h.options.subarray(0, optionLength))
    expect(Ipv4.parse(guarded(p))).toEqual({
      tos: mask(h.tos, 8),
      id: mask(h.id, 16),
      dontFragment: h.df,
      moreFragments: h.mf,
      fragmentOffset: mask(h.offset, 13),
      ttl: mask(h.ttl, 8),
      protocol: mask(h.proto, 8),
      src: mask(h.src, 32),
      dst: mask(h.dst, 32),
      options: padded
    })
    expect(p.length).toBe(20 + optionLength + h.payload.length)
    expect(p.subarray(20 + optionLength)).toEqual(h.payload)
  }, RUNS)

  it.prop("Ipv6: parse(build(h, p)) is h with every field cut to its width", {
    tc: anyField(8),
    flow: anyField(20),
    next: anyField(8),
    hop: anyField(8),
    src: bytes(16, 16),
    dst: bytes(16, 16),
    payload: bytes(0, 300)
  }, (h) => {
    const p = Ipv6.build({
      trafficClass: h.tc,
      flowLabel: h.flow,
      nextHeader: h.next,
      hopLimit: h.hop,
      src: h.src,
      dst: h.dst
    }, h.payload)
    expect(Ipv6.parse(guarded(p))).toEqual({
      trafficClass: mask(h.tc, 8),
      flowLabel: mask(h.flow, 20),
      nextHeader: mask(h.next, 8),
      hopLimit: mask(h.hop, 8),
      src: h.src,
      dst: h.dst
    })
    expect(Ipv6.payloadLength(p)).toBe(h.payload.length)
    expect(p.subarray(40)).toEqual(h.payload)
  }, RUNS)
})

/**
 * What an offending packet may look like when an error is built about it: valid, damaged, or noise; mostly short
 * (the checks are about the headers), sometimes longer than the largest quote.
 */
const offending = (min: number, valid: fc.Arbitrary<Uint8Array>) =>
  fc.oneof(
    valid,
    fc.oneof({ arbitrary: bytes(min, 120), weight: 4 }, { arbitrary: bytes(min, 1400), weight: 1 }),
    fc.tuple(valid, fc.nat(), fc.nat(7)).map(([p, at, bit]) => {
      p[at % p.length] = p[at % p.length]! ^ (1 << bit)
      return p
    }),
    fc.tuple(valid, fc.nat()).map(([p, cut]) => p.slice(0, Math.max(min, cut % (p.length + 1))))
  ).filter((p) => p.length >= min)

const pseudo6 = (r: Uint8Array): Array<number> => {
  const length = r.length - 40
  return [...r.subarray(8, 40), 0, 0, length >>> 8, length & 0xff, 0, 0, 0, 58]
}

describe("Icmp error builders: properties", () => {
  it.prop("IPv4 errors: valid checksums, at most 576 bytes, back to the sender, quoting its first bytes", {
    p: offending(20, fc.oneof({ arbitrary: arbV4Packet(100), weight: 4 }, { arbitrary: arbV4Packet(700), weight: 1 })),
    kind: fc.constantFrom("host", "frag"),
    mtu: fc.integer({ min: 0, max: 0xffff }),
    src: fc.integer({ min: 0, max: 0xffffffff }),
    ttl: fc.integer({ min: 1, max: 255 }),
    scratch: fc.constantFrom(0, 100, 576, 2000)
  }, ({ kind, mtu, p, scratch, src, ttl }) => {
    const out = scratch === 0 ? undefined : new Uint8Array(scratch)
    const r = kind === "host"
      ? Icmp.hostUnreachable4(guarded(p), src, ttl, out)
      : Icmp.fragmentationNeeded4(guarded(p), mtu, src, ttl, out)
    const quote = Math.min(p.length, 576 - 28)
    expect(r.length).toBe(28 + quote)
    expect(refSum(r.subarray(0, 20))).toBe(0xffff)
    expect(refSum(r.subarray(20))).toBe(0xffff)
    expect(Ipv4.parse(r)).toMatchObject({ protocol: 1, ttl, src, dst: Ipv4.src(p), dontFragment: false })
    expect([r[20], r[21]]).toEqual([3, kind === "host" ? 1 : 4])
    expect((r[26]! << 8) | r[27]!).toBe(kind === "host" ? 0 : mtu)
    expect(same(r.subarray(28), p.subarray(0, quote))).toBe(true)
    if (out !== undefined && out.length >= r.length) expect(r.buffer).toBe(out.buffer)
  }, SLOW_RUNS)

  it.prop("ICMPv6 errors: valid checksum over the pseudo-header, at most 1280 bytes, quoting the first bytes", {
    p: offending(40, fc.oneof({ arbitrary: arbV6Packet(100), weight: 4 }, { arbitrary: arbV6Packet(1300), weight: 1 })),
    kind: fc.constantFrom("noRoute", "tooBig"),
    mtu: fc.integer({ min: 0, max: 0xffffffff }),
    src: bytes(16, 48),
    at: fc.nat(),
    hop: fc.integer({ min: 1, max: 255 }),
    scratch: fc.constantFrom(0, 200, 1280, 2000)
  }, ({ at, hop, kind, mtu, p, scratch, src }) => {
    const offset = at % (src.length - 15)
    const out = scratch === 0 ? undefined : new Uint8Array(scratch)
    const r = kind === "noRoute"
      ? Icmp.noRoute6(guarded(p), guarded(src), offset, hop, out)
      : Icmp.packetTooBig6(guarded(p), mtu, guarded(src), offset, hop, out)
    const quote = Math.min(p.length, 1280 - 48)
    expect(r.length).toBe(48 + quote)
    expect(Ipv6.parse(r)).toMatchObject({ nextHeader: 58, hopLimit: hop, trafficClass: 0, flowLabel: 0 })
    expect(Ipv6.payloadLength(r)).toBe(8 + quote)
    expect(r.subarray(8, 24)).toEqual(src.subarray(offset, offset + 16))
    expect(r.subarray(24, 40)).toEqual(p.subarray(8, 24))
    expect(refSum(r.subarray(40), refSum(pseudo6(r)))).toBe(0xffff)
    expect([r[40], r[41]]).toEqual(kind === "noRoute" ? [1, 0] : [2, 0])
    expect(new DataView(r.buffer, r.byteOffset).getUint32(44)).toBe(kind === "noRoute" ? 0 : mtu)
    expect(same(r.subarray(48), p.subarray(0, quote))).toBe(true)
  }, SLOW_RUNS)
})

describe("Encapsulation and decapsulation of damaged packets: properties", () => {
  it.prop("a valid packet cut short is never sent, and is counted as truncated", {
    p: fc.oneof(arbV4Packet(300), arbV6Packet(300)),
    cut: fc.nat(),
    headroom: fc.boolean()
  }, ({ cut, headroom, p }) => {
    const short = p.slice(0, cut % p.length)
    const out = encapOut()
    encapBatch([guarded(headroom ? withHeadroom(short) : short)], encapContext(), out)
    expect(out.frames).toEqual([])
    expect(out.replies).toEqual([])
    expect(out.drops[Drop.EncapTruncated]).toBe(1)
  }, RUNS)

  /** A valid 4in4 or 6in4 frame as the raw socket hands it over, from the fixed remote to us. */
  const frame = fc.oneof(arbV4Packet(120), arbV6Packet(120).map((p) => {
    p.set(ip6("2001:db8:aa::1"), 8) // a source a 6in4 tunnel accepts (RFC 4213 3.6)
    return p
  })).map((inner) => {
    const v4 = inner[0]! >>> 4 === 4
    const f = Ipv4.build({
      tos: 0,
      id: 1,
      dontFragment: false,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 64,
      protocol: v4 ? 4 : 41,
      src: ip4(REMOTE),
      dst: ip4(LOCAL),
      options: new Uint8Array(0)
    }, inner)
    return { f, proto: v4 ? 4 as const : 41 as const }
  })
  const ctx = { v4: true, v6: true, remote: ip4(REMOTE), local: ip4(LOCAL) }

  it.prop("one flipped bit in a frame: never a throw, one verdict; a flip in a checksummed header is a drop", {
    frame,
    at: fc.nat(),
    bit: fc.nat(7)
  }, ({ at, bit, frame: { f, proto } }) => {
    const intact = { packets: [] as Array<Uint8Array>, drops: makeCounts() }
    decapBatch([f.slice()], proto, ctx, intact)
    expect(intact.packets.length).toBe(1)
    const i = at % f.length
    f[i] = f[i]! ^ (1 << bit)
    const out = { packets: [] as Array<Uint8Array>, drops: makeCounts() }
    decapBatch([guarded(f)], proto, ctx, out)
    expect(out.packets.length + out.drops.reduce((n, x) => n + x, 0)).toBe(1)
    // The outer header (and an inner IPv4 header) is covered by a ones' complement sum: one bit cannot pass it.
    const innerHeader = proto === 4 ? (f[20]! & 0x0f) * 4 : 0
    if (i < 20 + innerHeader) expect(out.packets).toEqual([])
  }, RUNS)
})

describe("VirtioNet codec: properties", () => {
  it.prop("read(write(h)) is h cut to the field widths, at any offset, touching only its 12 bytes", {
    h: fc.record({
      flags: anyField(8),
      gsoType: anyField(8),
      hdrLen: anyField(16),
      gsoSize: anyField(16),
      csumStart: anyField(16),
      csumOffset: anyField(16),
      numBuffers: anyField(16)
    }),
    before: fc.nat(40),
    after: fc.nat(40)
  }, ({ after, before, h }) => {
    const b = new Uint8Array(before + 12 + after).fill(0xa5)
    VirtioNet.write(guarded(b).subarray(before, before + 12), 0, h)
    expect(b.subarray(0, before).every((x) => x === 0xa5)).toBe(true)
    expect(b.subarray(before + 12).every((x) => x === 0xa5)).toBe(true)
    expect(VirtioNet.read(guarded(b), before, VirtioNet.makeHeader())).toEqual({
      flags: mask(h.flags, 8),
      gsoType: mask(h.gsoType, 8),
      hdrLen: mask(h.hdrLen, 16),
      gsoSize: mask(h.gsoSize, 16),
      csumStart: mask(h.csumStart, 16),
      csumOffset: mask(h.csumOffset, 16),
      numBuffers: mask(h.numBuffers, 16)
    })
  }, RUNS)
})

describe("Gso.segment on damaged super-packets: properties", () => {
  /** Small valid super-packets (header + packet), so that 10,000 of them stay cheap. */
  const arbSuper = fc.record({
    flow: arbFlow,
    fin: fc.boolean(),
    length: fc.integer({ min: 1, max: 600 }),
    mss: fc.integer({ min: 60, max: 400 })
  }).map(({ fin, flow, length, mss }) => {
    const spec: TcpSpec = { ...flow, flags: ACK | PSH | (fin ? FIN : 0), payload: new Uint8Array(length).fill(7) }
    return superFrame(spec, mss)
  })

  it.prop("a truncated or bit-flipped super-packet never throws; a refusal appends and changes nothing", {
    frame: arbSuper,
    how: fc.constantFrom("cut", "flip", "both"),
    at: fc.nat(),
    bit: fc.nat(7),
    cut: fc.nat()
  }, ({ at, bit, cut, frame, how }) => {
    const hdr = VirtioNet.read(frame, 0, VirtioNet.makeHeader())
    let packet = frame.subarray(12)
    if (how !== "cut") packet[at % packet.length] = packet[at % packet.length]! ^ (1 << bit)
    if (how !== "flip") packet = packet.slice(0, cut % packet.length)
    const out: Array<Uint8Array> = []
    const copy = packet.slice()
    const result = Gso.segment(guarded(packet), hdr, out, Arena.make(1 << 16))
    if (result < 0) {
      expect(out).toEqual([])
      expect(packet).toEqual(copy)
      expect(Object.values(Gso.GsoError)).toContain(result)
    } else {
      expect(out.length).toBe(result)
      for (const seg of out) expect(seg.length).toBeLessThanOrEqual(packet.length)
    }
  }, SLOW_RUNS)
})
