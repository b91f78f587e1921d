import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Ipv6 from "../../src/domain/Ipv6.js"
import { arbV6Packet, fromHex, guarded, ip6 } from "./helpers.js"

// RFC 8200 3 layout: version 6, traffic class 0xb9, flow label 0x12345, payload length 8, next header 17,
// hop limit 3, 2001:db8:1::1 -> 2001:db8:2::2, then an 8-byte UDP header.
const GOLDEN = fromHex(
  "6b912345 0008 11 03" + "20010db8000100000000000000000001" + "20010db8000200000000000000000002"
    + "0035003500080000"
)

const arbHeader = fc.record({
  trafficClass: fc.integer({ min: 0, max: 255 }),
  flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  nextHeader: fc.integer({ min: 0, max: 255 }),
  hopLimit: fc.integer({ min: 0, max: 255 }),
  src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  dst: fc.uint8Array({ minLength: 16, maxLength: 16 })
})

describe("Ipv6", () => {
  it("reads every field of a hand-built header", () => {
    const p = GOLDEN
    expect(Ipv6.version(p)).toBe(6)
    expect(Ipv6.trafficClass(p)).toBe(0xb9)
    expect(Ipv6.ecn(p)).toBe(1)
    expect(Ipv6.flowLabel(p)).toBe(0x12345)
    expect(Ipv6.payloadLength(p)).toBe(8)
    expect(Ipv6.nextHeader(p)).toBe(17)
    expect(Ipv6.hopLimit(p)).toBe(3)
    expect(Ipv6.src(p)).toEqual(ip6("2001:db8:1::1"))
    expect(Ipv6.dst(p)).toEqual(ip6("2001:db8:2::2"))
  })

  it("rewrites only the ECN bits of the traffic class", () => {
    const p = GOLDEN.slice()
    Ipv6.setEcn(p, 3)
    expect(Ipv6.trafficClass(p)).toBe(0xbb)
    expect(Ipv6.flowLabel(p)).toBe(0x12345)
    Ipv6.setEcn(p, 0)
    expect(Ipv6.trafficClass(p)).toBe(0xb8)
    expect(Ipv6.version(p)).toBe(6)
  })

  it("classifies addresses (RFC 4291 2.4)", () => {
    const at = (text: string) => {
      const b = new Uint8Array(20)
      b.set(ip6(text), 4)
      return b
    }
    expect(Ipv6.isUnspecifiedAt(at("::"), 4)).toBe(true)
    expect(Ipv6.isUnspecifiedAt(at("::1"), 4)).toBe(false)
    expect(Ipv6.isLoopbackAt(at("::1"), 4)).toBe(true)
    expect(Ipv6.isLoopbackAt(at("::2"), 4)).toBe(false)
    expect(Ipv6.isMulticastAt(at("ff02::1"), 4)).toBe(true)
    expect(Ipv6.isMulticastAt(at("fe80::1"), 4)).toBe(false)
    expect(Ipv6.isZero96At(at("::192.0.2.1"), 4)).toBe(true)
    expect(Ipv6.isZero96At(at("::1:0:0:0"), 4)).toBe(false)
    expect(Ipv6.isV4MappedAt(at("::ffff:192.0.2.1"), 4)).toBe(true)
    expect(Ipv6.isV4MappedAt(at("::fffe:192.0.2.1"), 4)).toBe(false)
    expect(Ipv6.isV4MappedAt(at("1::ffff:192.0.2.1"), 4)).toBe(false)
    expect(Ipv6.equalAt(at("2001:db8::1"), 4, ip6("2001:db8::1"), 0)).toBe(true)
    expect(Ipv6.equalAt(at("2001:db8::1"), 4, ip6("2001:db8::2"), 0)).toBe(false)
  })

  it("parses the hand-built header and rejects malformations", () => {
    expect(Ipv6.parse(GOLDEN)).toEqual({
      trafficClass: 0xb9,
      flowLabel: 0x12345,
      nextHeader: 17,
      hopLimit: 3,
      src: ip6("2001:db8:1::1"),
      dst: ip6("2001:db8:2::2")
    })
    const reason = (p: Uint8Array) => {
      const r = Ipv6.parse(p)
      return Ipv6.isParseError(r) ? r.reason : "ok"
    }
    expect(reason(GOLDEN.subarray(0, 39))).toBe("truncated")
    expect(reason(GOLDEN.subarray(0, 47))).toBe("payload-length")
    expect(reason(Uint8Array.from(GOLDEN, (b, i) => (i === 0 ? 0x4b : b)))).toBe("version")
    expect(reason(Uint8Array.from([...GOLDEN, 1, 2]))).toBe("ok")
  })

  it.prop("parse(build(h, payload)) gives h back", {
    header: arbHeader,
    payload: fc.uint8Array({ maxLength: 200 })
  }, ({ header, payload }) => {
    const p = Ipv6.build(header, payload)
    expect(p.length).toBe(40 + payload.length)
    expect(Ipv6.payloadLength(p)).toBe(payload.length)
    expect(Ipv6.parse(p)).toEqual(header)
    expect(p.subarray(40)).toEqual(payload)
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("parse never throws nor reads outside arbitrary bytes, truncations or bit flips", {
    bytes: fc.uint8Array({ maxLength: 120, size: "max" }),
    packet: arbV6Packet(64),
    cut: fc.nat(),
    flip: fc.nat()
  }, ({ bytes, cut, flip, packet }) => {
    Ipv6.parse(guarded(bytes))
    if (bytes.length > 0) bytes[0] = 0x60 | (bytes[0]! & 0x0f)
    const r = Ipv6.parse(guarded(bytes))
    if (!Ipv6.isParseError(r)) expect(bytes.length).toBeGreaterThanOrEqual(40 + Ipv6.payloadLength(bytes))
    expect(Ipv6.isParseError(Ipv6.parse(guarded(packet.subarray(0, cut % packet.length))))).toBe(true)
    const bit = flip % (packet.length * 8)
    const flipped = packet.slice()
    flipped[bit >>> 3]! ^= 1 << (bit & 7)
    Ipv6.parse(guarded(flipped))
  }, { fastCheck: { numRuns: 10_000 } })
})
