import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Ipv4 from "../../src/domain/Ipv4.js"
import { arbV4Packet, fixV4Checksum, fromHex, guarded, ip4, refChecksum, refSum, v4Packet } from "./helpers.js"

// RFC 791 3.1 layout, field by field: version 4 / IHL 5, TOS 0xb8, total length 28, ID 0xabcd, flags DF with
// fragment offset 0, TTL 17, protocol 17 (UDP), checksum, 192.0.2.1 -> 198.51.100.7, then an 8-byte UDP header.
const GOLDEN = fromHex(
  "45 b8 001c abcd 4000 11 11 0000 c0000201 c6336407" + "0035 0035 0008 0000"
)
fixV4Checksum(GOLDEN)

const arbHeader = fc.record({
  tos: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  fragmentOffset: fc.integer({ min: 0, max: 0x1fff }),
  ttl: fc.integer({ min: 0, max: 255 }),
  protocol: fc.integer({ min: 0, max: 255 }),
  src: fc.integer({ min: 0, max: 0xffffffff }),
  dst: fc.integer({ min: 0, max: 0xffffffff }),
  options: fc.integer({ min: 0, max: 10 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w }))
})

describe("Ipv4", () => {
  it("reads every field of a hand-built header", () => {
    const p = GOLDEN
    expect(Ipv4.version(p)).toBe(4)
    expect(Ipv4.ihl(p)).toBe(5)
    expect(Ipv4.headerLength(p)).toBe(20)
    expect(Ipv4.tos(p)).toBe(0xb8)
    expect(Ipv4.ecn(p)).toBe(0)
    expect(Ipv4.totalLength(p)).toBe(28)
    expect(Ipv4.id(p)).toBe(0xabcd)
    expect(Ipv4.dontFragment(p)).toBe(true)
    expect(Ipv4.moreFragments(p)).toBe(false)
    expect(Ipv4.fragmentOffset(p)).toBe(0)
    expect(Ipv4.isFragment(p)).toBe(false)
    expect(Ipv4.ttl(p)).toBe(17)
    expect(Ipv4.protocol(p)).toBe(17)
    expect(Ipv4.checksum(p)).toBe(refChecksum(fromHex("45b8001cabcd40001111 0000 c0000201c6336407")))
    expect(Ipv4.src(p)).toBe(ip4("192.0.2.1"))
    expect(Ipv4.dst(p)).toBe(ip4("198.51.100.7"))
    expect(Ipv4.verifyChecksum(p)).toBe(true)
  })

  it("tells fragments apart: MF alone, offset alone, DF is not a fragment", () => {
    expect(Ipv4.isFragment(v4Packet({ mf: true }))).toBe(true)
    expect(Ipv4.isFragment(v4Packet({ offset8: 1 }))).toBe(true)
    expect(Ipv4.fragmentOffset(v4Packet({ offset8: 0x1abc }))).toBe(0x1abc)
    expect(Ipv4.isFragment(v4Packet({ df: true }))).toBe(false)
  })

  it("writes fields with the setters and recomputes the checksum", () => {
    const p = new Uint8Array(24)
    Ipv4.setVersionIhl(p, 6)
    Ipv4.setTos(p, 0x2e)
    Ipv4.setTotalLength(p, 24)
    Ipv4.setId(p, 0x1234)
    Ipv4.setFragment(p, false, true, 0x0123)
    Ipv4.setTtl(p, 9)
    Ipv4.setProtocol(p, 4)
    Ipv4.setSrc(p, ip4("203.0.113.1"))
    Ipv4.setDst(p, ip4("203.0.113.2"))
    Ipv4.computeChecksum(p)
    expect(Buffer.from(p).toString("hex")).toBe(
      "462e0018" + "12342123" + "0904" + refChecksum(fixZero(p)).toString(16).padStart(4, "0") + "cb007101cb007102"
        + "00000000"
    )
    expect(refSum(p.subarray(0, 24))).toBe(0xffff)
  })

  it("rewrites ECN with an incrementally fixed checksum", () => {
    for (let tos = 0; tos < 256; tos++) {
      for (let ecn = 0; ecn < 4; ecn++) {
        const p = v4Packet({ tos, ttl: tos })
        Ipv4.setEcnIncremental(p, ecn)
        expect(Ipv4.tos(p)).toBe((tos & 0xfc) | ecn)
        expect(refSum(p.subarray(0, 20))).toBe(0xffff)
      }
    }
  })

  it("classifies addresses", () => {
    expect(Ipv4.isThisNetwork(ip4("0.1.2.3"))).toBe(true)
    expect(Ipv4.isThisNetwork(ip4("1.0.0.0"))).toBe(false)
    expect(Ipv4.isLoopback(ip4("127.9.9.9"))).toBe(true)
    expect(Ipv4.isMulticast(ip4("224.0.0.9"))).toBe(true)
    expect(Ipv4.isMulticast(ip4("239.255.255.255"))).toBe(true)
    expect(Ipv4.isMulticast(ip4("240.0.0.0"))).toBe(false)
    expect(Ipv4.isLimitedBroadcast(ip4("255.255.255.255"))).toBe(true)
    expect(Ipv4.isLimitedBroadcast(ip4("203.0.113.255"))).toBe(false)
  })

  it("parses the hand-built header", () => {
    expect(Ipv4.parse(GOLDEN)).toEqual({
      tos: 0xb8,
      id: 0xabcd,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 17,
      protocol: 17,
      src: ip4("192.0.2.1"),
      dst: ip4("198.51.100.7"),
      options: new Uint8Array(0)
    })
  })

  it("rejects each malformation with its reason", () => {
    const reason = (p: Uint8Array) => {
      const r = Ipv4.parse(p)
      return Ipv4.isParseError(r) ? r.reason : "ok"
    }
    expect(reason(GOLDEN.subarray(0, 19))).toBe("truncated")
    expect(reason(fixV4Checksum(Uint8Array.from(GOLDEN, (b, i) => (i === 0 ? 0x65 : b))))).toBe("version")
    expect(reason(fixV4Checksum(Uint8Array.from(GOLDEN, (b, i) => (i === 0 ? 0x44 : b))))).toBe("header-length")
    expect(reason(fixV4Checksum(Uint8Array.from(GOLDEN, (b, i) => (i === 0 ? 0x48 : b))))).toBe("truncated")
    expect(reason(fixV4Checksum(Uint8Array.from(GOLDEN, (b, i) => (i === 3 ? 19 : b))))).toBe("header-length")
    expect(reason(fixV4Checksum(Uint8Array.from(GOLDEN, (b, i) => (i === 3 ? 29 : b))))).toBe("total-length")
    expect(reason(Uint8Array.from(GOLDEN, (b, i) => (i === 8 ? 16 : b)))).toBe("checksum")
    // Bytes after the total length (link padding) are not the packet's.
    expect(reason(Uint8Array.from([...GOLDEN, 0, 0, 0]))).toBe("ok")
  })

  it.prop("parse(build(h, payload)) gives h back", {
    header: arbHeader,
    payload: fc.uint8Array({ maxLength: 200 })
  }, ({ header, payload }) => {
    const p = Ipv4.build(header, payload)
    expect(p.length).toBe(20 + header.options.length + payload.length)
    expect(refSum(p.subarray(0, Ipv4.headerLength(p)))).toBe(0xffff)
    expect(Ipv4.parse(p)).toEqual(header)
    expect(p.subarray(Ipv4.headerLength(p))).toEqual(payload)
  }, { fastCheck: { numRuns: 2000 } })

  it.prop("parse never throws nor reads outside arbitrary bytes", {
    bytes: fc.uint8Array({ maxLength: 100, size: "max" }),
    steer: fc.boolean()
  }, ({ bytes, steer }) => {
    // Half of the inputs get version 4, their length as total length and a right checksum, so parsing goes past the
    // first checks.
    if (steer && bytes.length > 0) {
      bytes[0] = 0x40 | (bytes[0]! & 0x0f)
      if (bytes.length >= 4) {
        bytes[2] = bytes.length >>> 8
        bytes[3] = bytes.length & 0xff
      }
      if (bytes.length >= (bytes[0]! & 0x0f) * 4 && bytes.length >= 12) fixV4Checksum(bytes)
    }
    const r = Ipv4.parse(guarded(bytes))
    if (!Ipv4.isParseError(r)) {
      expect(bytes.length).toBeGreaterThanOrEqual(Ipv4.totalLength(bytes))
      expect(r.options.length).toBe(Ipv4.headerLength(bytes) - 20)
    }
  }, { fastCheck: { numRuns: 10_000 } })

  it.prop("parse never throws on truncations and bit flips of valid packets; header flips are caught", {
    packet: arbV4Packet(64),
    cut: fc.nat(),
    flip: fc.nat()
  }, ({ cut, flip, packet }) => {
    const hl = (packet[0]! & 0x0f) * 4
    const short = packet.subarray(0, cut % packet.length)
    expect(Ipv4.isParseError(Ipv4.parse(guarded(short)))).toBe(true)
    const bit = flip % (packet.length * 8)
    const flipped = packet.slice()
    flipped[bit >>> 3]! ^= 1 << (bit & 7)
    const r = Ipv4.parse(guarded(flipped))
    // One flipped bit changes the one's complement sum, so the header checksum catches it (RFC 1071 2(A)); byte 0
    // is left out because a changed IHL moves the checked range.
    if (bit >>> 3 > 0 && bit >>> 3 < hl) expect(Ipv4.isParseError(r)).toBe(true)
    if (bit >>> 3 >= hl) expect(Ipv4.isParseError(r)).toBe(false)
  }, { fastCheck: { numRuns: 10_000 } })
})

const fixZero = (p: Uint8Array): Uint8Array => {
  const c = p.slice(0, (p[0]! & 0x0f) * 4)
  c[10] = 0
  c[11] = 0
  return c
}
