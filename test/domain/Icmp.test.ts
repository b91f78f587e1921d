import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Icmp from "../../src/domain/Icmp.js"
import { guarded, ip4, ip6, patterned, refSum, v4Packet, v6Packet } from "./helpers.js"

/** Checks an ICMP reply the way a receiving stack would, field by field (RFC 791, RFC 792), with the reference sum. */
const expectIcmp4 = (
  r: Uint8Array,
  want: { src: string; dst: string; ttl: number; type: number; code: number; mtu: number; quote: Uint8Array }
) => {
  const dv = new DataView(r.buffer, r.byteOffset, r.length)
  expect(r[0]).toBe(0x45)
  expect(dv.getUint16(2)).toBe(r.length)
  expect(dv.getUint16(6) & 0x4000).toBe(0) // DF clear
  expect(dv.getUint16(6) & 0x3fff).toBe(0) // not a fragment
  expect(r[8]).toBe(want.ttl)
  expect(r[9]).toBe(1)
  expect(dv.getUint32(12)).toBe(ip4(want.src))
  expect(dv.getUint32(16)).toBe(ip4(want.dst))
  expect(refSum(r.subarray(0, 20))).toBe(0xffff)
  expect(r[20]).toBe(want.type)
  expect(r[21]).toBe(want.code)
  expect(dv.getUint16(24)).toBe(0) // unused
  expect(dv.getUint16(26)).toBe(want.mtu)
  expect(refSum(r.subarray(20))).toBe(0xffff)
  expect(r.subarray(28)).toEqual(want.quote)
}

/** Same for ICMPv6 (RFC 4443 2.1, checksum over the RFC 8200 8.1 pseudo-header). */
const expectIcmp6 = (
  r: Uint8Array,
  want: { src: string; dst: string; hop: number; type: number; code: number; param: number; quote: Uint8Array }
) => {
  const dv = new DataView(r.buffer, r.byteOffset, r.length)
  expect(r[0]! >>> 4).toBe(6)
  expect(dv.getUint16(4)).toBe(r.length - 40)
  expect(r[6]).toBe(58)
  expect(r[7]).toBe(want.hop)
  expect(r.subarray(8, 24)).toEqual(ip6(want.src))
  expect(r.subarray(24, 40)).toEqual(ip6(want.dst))
  expect(r[40]).toBe(want.type)
  expect(r[41]).toBe(want.code)
  expect(dv.getUint32(44)).toBe(want.param)
  const pseudo = new Uint8Array(40)
  pseudo.set(r.subarray(8, 40))
  new DataView(pseudo.buffer).setUint32(32, r.length - 40)
  pseudo[39] = 58
  expect(refSum(r.subarray(40), refSum(pseudo))).toBe(0xffff)
  expect(r.subarray(48)).toEqual(want.quote)
}

const SENDER4 = "203.0.113.10"
const TARGET4 = "203.0.113.20"
const SENDER6 = "2001:db8:1::10"
const TARGET6 = "2001:db8:2::20"

describe("Icmp builders", () => {
  it("builds host unreachable (type 3 code 1) quoting the whole small packet", () => {
    const off = v4Packet({ src: SENDER4, dst: TARGET4, payload: patterned(20) })
    const r = Icmp.hostUnreachable4(off, ip4("192.0.2.1"), 64)
    expect(r.length).toBe(20 + 8 + off.length)
    expectIcmp4(r, { src: "192.0.2.1", dst: SENDER4, ttl: 64, type: 3, code: 1, mtu: 0, quote: off })
  })

  it("builds fragmentation needed (type 3 code 4) with the next-hop MTU in bytes 6-7", () => {
    const off = v4Packet({ src: SENDER4, dst: TARGET4, df: true, payload: patterned(40) })
    const r = Icmp.fragmentationNeeded4(off, 1380, ip4(TARGET4), 9)
    expectIcmp4(r, { src: TARGET4, dst: SENDER4, ttl: 9, type: 3, code: 4, mtu: 1380, quote: off })
  })

  it("quotes no more than fits in 576 bytes (RFC 1812 4.3.2.3)", () => {
    const off = v4Packet({ src: SENDER4, dst: TARGET4, payload: patterned(1400) })
    const r = Icmp.hostUnreachable4(off, ip4("192.0.2.1"), 64)
    expect(r.length).toBe(576)
    expectIcmp4(r, { src: "192.0.2.1", dst: SENDER4, ttl: 64, type: 3, code: 1, mtu: 0, quote: off.subarray(0, 548) })
  })

  it("builds no route (ICMPv6 type 1 code 0) and Packet Too Big (type 2) with checksums over the pseudo-header", () => {
    const off = v6Packet({ src: SENDER6, dst: TARGET6, payload: patterned(100) })
    const me = ip6("2001:db8::1")
    expectIcmp6(Icmp.noRoute6(off, me, 0, 64), {
      src: "2001:db8::1",
      dst: SENDER6,
      hop: 64,
      type: 1,
      code: 0,
      param: 0,
      quote: off
    })
    expectIcmp6(Icmp.packetTooBig6(off, 1280, off, 24, 3), {
      src: TARGET6,
      dst: SENDER6,
      hop: 3,
      type: 2,
      code: 0,
      param: 1280,
      quote: off
    })
  })

  it("quotes no more than fits in 1280 bytes (RFC 4443 2.4(c))", () => {
    const off = v6Packet({ src: SENDER6, dst: TARGET6, payload: patterned(1400) })
    const r = Icmp.packetTooBig6(off, 1400, ip6("2001:db8::1"), 0, 64)
    expect(r.length).toBe(1280)
    expectIcmp6(r, {
      src: "2001:db8::1",
      dst: SENDER6,
      hop: 64,
      type: 2,
      code: 0,
      param: 1400,
      quote: off.subarray(0, 1232)
    })
  })

  it("writes into a scratch buffer that is big enough, else allocates", () => {
    const off = v4Packet({ src: SENDER4, dst: TARGET4 })
    const scratch = new Uint8Array(600)
    const r = Icmp.hostUnreachable4(off, ip4("192.0.2.1"), 64, scratch)
    expect(r.buffer).toBe(scratch.buffer)
    expect(r.byteOffset).toBe(0)
    expect(r.length).toBe(28 + off.length)
    const small = new Uint8Array(10)
    const r2 = Icmp.hostUnreachable4(off, ip4("192.0.2.1"), 64, small)
    expect(r2.buffer).not.toBe(small.buffer)
    expect(r2).toEqual(r)
    const r6 = Icmp.noRoute6(v6Packet(), ip6("2001:db8::1"), 0, 64, scratch)
    expect(r6.buffer).toBe(scratch.buffer)
  })
})

describe("Icmp.shouldReply4 (RFC 1812 4.3.2.7)", () => {
  const icmp = (type: number) =>
    v4Packet({ src: SENDER4, dst: TARGET4, proto: 1, payload: Uint8Array.of(type, 0, 0, 0) })
  const cases: ReadonlyArray<[string, Uint8Array, boolean]> = [
    ["a UDP packet", v4Packet({ src: SENDER4, dst: TARGET4 }), true],
    ["an echo request", icmp(8), true],
    ["an echo reply", icmp(0), true],
    ["a destination unreachable", icmp(3), false],
    ["a source quench", icmp(4), false],
    ["a redirect", icmp(5), false],
    ["a time exceeded", icmp(11), false],
    ["a parameter problem", icmp(12), false],
    ["an ICMP packet too short to show its type", v4Packet({ proto: 1, payload: new Uint8Array(0) }), false],
    ["a first fragment", v4Packet({ src: SENDER4, dst: TARGET4, mf: true }), true],
    ["a later fragment", v4Packet({ src: SENDER4, dst: TARGET4, offset8: 3 }), false],
    ["a later fragment of an echo", v4Packet({ proto: 1, offset8: 3, payload: Uint8Array.of(8, 0, 0, 0) }), false],
    ["from 0.0.0.0", v4Packet({ src: "0.0.0.0", dst: TARGET4 }), false],
    ["from 0/8", v4Packet({ src: "0.1.2.3", dst: TARGET4 }), false],
    ["from loopback", v4Packet({ src: "127.0.0.1", dst: TARGET4 }), false],
    ["from multicast", v4Packet({ src: "224.0.0.5", dst: TARGET4 }), false],
    ["from broadcast", v4Packet({ src: "255.255.255.255", dst: TARGET4 }), false],
    ["from class E", v4Packet({ src: "240.0.0.1", dst: TARGET4 }), false],
    ["to multicast", v4Packet({ src: SENDER4, dst: "224.0.0.9" }), false],
    ["to broadcast", v4Packet({ src: SENDER4, dst: "255.255.255.255" }), false],
    ["an IPv6 packet", v6Packet(), false],
    ["19 bytes", v4Packet().subarray(0, 19), false]
  ]
  for (const [name, packet, want] of cases) {
    it(`${want ? "answers" : "does not answer"} ${name}`, () => expect(Icmp.shouldReply4(packet)).toBe(want))
  }
})

describe("Icmp.shouldReply6 (RFC 4443 2.4(e))", () => {
  const icmp6 = (type: number) =>
    v6Packet({ src: SENDER6, dst: TARGET6, next: 58, payload: Uint8Array.of(type, 0, 0, 0) })
  /** A hop-by-hop header (8 bytes) then `next`. */
  const hbh = (next: number, body: Uint8Array) =>
    v6Packet({ src: SENDER6, dst: TARGET6, next: 0, payload: Uint8Array.from([next, 0, 1, 4, 0, 0, 0, 0, ...body]) })
  /** A fragment header with the given offset (8-byte units) then `next`. */
  const frag = (offset8: number, next: number, body: Uint8Array) =>
    v6Packet({
      src: SENDER6,
      dst: TARGET6,
      next: 44,
      payload: Uint8Array.from([next, 0, offset8 >>> 5, (offset8 << 3) & 0xf8, 0, 0, 0, 1, ...body])
    })
  const cases: ReadonlyArray<[string, Uint8Array, boolean, boolean]> = [
    ["a UDP packet", v6Packet({ src: SENDER6, dst: TARGET6 }), true, true],
    ["an echo request", icmp6(128), true, true],
    ["a destination unreachable", icmp6(1), false, false],
    ["a packet too big", icmp6(2), false, false],
    ["an ICMPv6 error behind a hop-by-hop header", hbh(58, Uint8Array.of(3, 0, 0, 0)), false, false],
    ["an echo behind a hop-by-hop header", hbh(58, Uint8Array.of(128, 0, 0, 0)), true, true],
    ["an ICMPv6 error in a first fragment", frag(0, 58, Uint8Array.of(1, 0, 0, 0)), false, false],
    ["a later fragment", frag(5, 58, Uint8Array.of(1, 0, 0, 0)), true, true],
    ["an ICMPv6 packet too short to show its type", v6Packet({ next: 58, payload: new Uint8Array(0) }), false, false],
    ["a header chain cut short", v6Packet({ next: 0, payload: Uint8Array.of(58) }), false, false],
    ["from ::", v6Packet({ src: "::", dst: TARGET6 }), false, false],
    ["from ::1", v6Packet({ src: "::1", dst: TARGET6 }), false, false],
    ["from multicast", v6Packet({ src: "ff02::1", dst: TARGET6 }), false, false],
    ["to multicast", v6Packet({ src: SENDER6, dst: "ff05::1:3" }), false, true],
    ["from link-local", v6Packet({ src: "fe80::1", dst: TARGET6 }), true, true],
    ["an IPv4 packet", v4Packet({ payload: new Uint8Array(40) }), false, false]
  ]
  for (const [name, packet, unreachable, tooBig] of cases) {
    it(`${name}: unreachable ${unreachable}, packet too big ${tooBig}`, () => {
      expect(Icmp.shouldReply6(packet, false)).toBe(unreachable)
      expect(Icmp.shouldReply6(packet, true)).toBe(tooBig)
    })
  }

  it.prop("the predicates never throw nor read outside arbitrary bytes", {
    bytes: fc.uint8Array({ maxLength: 120, size: "max" }),
    v: fc.constantFrom(0x40, 0x45, 0x60)
  }, ({ bytes, v }) => {
    if (bytes.length > 0) bytes[0] = v | (v === 0x40 ? bytes[0]! & 0x0f : 0)
    const a = Icmp.shouldReply4(guarded(bytes))
    const b = Icmp.shouldReply6(guarded(bytes), false)
    const c = Icmp.shouldReply6(guarded(bytes), true)
    expect(a && (b || c)).toBe(false) // never both an IPv4 and an IPv6 packet
  }, { fastCheck: { numRuns: 10_000 } })
})
