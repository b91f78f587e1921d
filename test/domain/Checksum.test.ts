import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Checksum from "../../src/domain/Checksum.js"
import { fromHex, ip4, ip6, refChecksum, refSum, v4Packet } from "./helpers.js"

describe("Checksum", () => {
  it("sums the RFC 1071 section 3 example", () => {
    const bytes = fromHex("0001 f203 f4f5 f6f7")
    expect(Checksum.sum(bytes, 0, 8)).toBe(0xddf2)
    expect(Checksum.checksum(bytes, 0, 8)).toBe(0x220d)
  })

  it("pads an odd trailing byte with zero", () => {
    expect(Checksum.sum(fromHex("0102 03"), 0, 3)).toBe(0x0102 + 0x0300)
  })

  it("gives the checksum of an empty range as 0xffff and continues from an initial sum", () => {
    expect(Checksum.checksum(new Uint8Array(4), 2, 0)).toBe(0xffff)
    expect(Checksum.sum(fromHex("0001"), 0, 2, 0xfffe)).toBe(0xffff)
    expect(Checksum.sum(fromHex("0002"), 0, 2, 0xffff)).toBe(0x0002)
  })

  it.prop(
    "matches the reference for any range, buffer alignment and length (wide and byte paths)",
    {
      bytes: fc.uint8Array({ minLength: 0, maxLength: 1600, size: "max" }),
      shift: fc.integer({ min: 0, max: 7 }),
      from: fc.nat(),
      cut: fc.nat(),
      initial: fc.integer({ min: 0, max: 0xffff })
    },
    ({ bytes, cut, from, initial, shift }) => {
      // Place the data at every possible address alignment inside a larger buffer.
      const backing = new Uint8Array(bytes.length + 8)
      backing.fill(0xa5)
      backing.set(bytes, shift)
      const view = backing.subarray(shift, shift + bytes.length)
      const offset = bytes.length === 0 ? 0 : from % (bytes.length + 1)
      const length = cut % (bytes.length - offset + 1)
      expect(Checksum.sum(view, offset, length, initial)).toBe(refSum(bytes.subarray(offset, offset + length), initial))
    },
    { fastCheck: { numRuns: 3000 } }
  )

  it("stays exact over ranges longer than one accumulator block", () => {
    const big = new Uint8Array(4_500_003)
    big.fill(0xff)
    for (let i = 0; i < big.length; i += 7) big[i] = i & 0xff // 0xff runs push every accumulator high
    expect(Checksum.sum(big, 1, big.length - 1)).toBe(refSum(big.subarray(1)))
    expect(Checksum.sum(big, 0, big.length)).toBe(refSum(big))
  })

  it("computes a checksum that makes the covered range sum to 0xffff", () => {
    const p = v4Packet()
    p[10] = 0
    p[11] = 0
    const c = Checksum.checksum(p, 0, 20)
    expect(c).toBe(refChecksum(p.subarray(0, 20)))
    p[10] = c >>> 8
    p[11] = c & 0xff
    expect(Checksum.sum(p, 0, 20)).toBe(0xffff)
  })

  it("sums the IPv4 pseudo-header (RFC 768) like the reference over its 12 bytes", () => {
    const pseudo = fromHex("c0000201 c6336402 0011 05dc")
    expect(Checksum.pseudoHeader4(ip4("192.0.2.1"), ip4("198.51.100.2"), 17, 1500)).toBe(refSum(pseudo))
  })

  it("sums the IPv6 pseudo-header (RFC 8200 8.1) like the reference over its 40 bytes", () => {
    const src = ip6("2001:db8::1")
    const dst = ip6("2001:db8:ffff::abcd")
    const header = new Uint8Array(40)
    header.set(src, 8)
    header.set(dst, 24)
    const pseudo = new Uint8Array(40)
    pseudo.set(src, 0)
    pseudo.set(dst, 16)
    new DataView(pseudo.buffer).setUint32(32, 70_000)
    pseudo[39] = 58
    expect(Checksum.pseudoHeader6(header, 8, 70_000, 58)).toBe(refSum(pseudo))
  })

  it.prop(
    "updates incrementally (RFC 1624) to what a full recomputation gives",
    {
      tos: fc.integer({ min: 0, max: 255 }),
      ttl: fc.integer({ min: 0, max: 255 }),
      word: fc.integer({ min: 0, max: 9 }),
      value: fc.integer({ min: 0, max: 0xffff })
    },
    ({ tos, ttl, value, word }) => {
      const p = v4Packet({ tos, ttl })
      if (word === 5) return // the checksum field itself
      const old = (p[2 * word]! << 8) | p[2 * word + 1]!
      p[2 * word] = value >>> 8
      p[2 * word + 1] = value & 0xff
      const updated = Checksum.update16((p[10]! << 8) | p[11]!, old, value)
      p[10] = 0
      p[11] = 0
      expect(updated).toBe(refChecksum(p.subarray(0, 20)))
    },
    { fastCheck: { numRuns: 2000 } }
  )
})
