import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as VirtioNet from "../../src/domain/VirtioNet.js"
import { fromHex, guarded, refSum } from "./helpers.js"
import { arbFlow, l4Of, tcpPacket, timestamps, vnet } from "./offloadRef.js"

describe("VirtioNet header", () => {
  // A TCPv6 super-packet header as the kernel writes it on x86: NEEDS_CSUM, TCPV6, hdr_len 72, gso_size 1428,
  // csum_start 40, csum_offset 16, num_buffers 0.
  const golden = fromHex("01 04 4800 9405 2800 1000 0000")

  it("decodes little-endian fields", () => {
    const h = VirtioNet.read(golden, 0, VirtioNet.makeHeader())
    expect(h).toEqual({
      flags: VirtioNet.Flag.NeedsCsum,
      gsoType: VirtioNet.GsoType.TcpV6,
      hdrLen: 72,
      gsoSize: 1428,
      csumStart: 40,
      csumOffset: 16,
      numBuffers: 0
    })
    expect(VirtioNet.gsoSize(golden)).toBe(1428)
    expect(VirtioNet.csumStart(golden)).toBe(40)
    expect(VirtioNet.hdrLen(golden)).toBe(72)
  })

  it("reads at an offset and encodes what it decodes", () => {
    const frame = new Uint8Array(20)
    frame.set(golden, 5)
    const h = VirtioNet.read(frame, 5, VirtioNet.makeHeader())
    const back = new Uint8Array(12)
    VirtioNet.write(back, 0, h)
    expect(back).toEqual(golden)
    expect(VirtioNet.flags(frame, 5)).toBe(1)
    expect(VirtioNet.gsoType(frame, 5)).toBe(4)
    expect(VirtioNet.csumOffset(frame, 5)).toBe(16)
  })

  it("writes num_buffers and the fields helper", () => {
    const b = new Uint8Array(12)
    VirtioNet.write(b, 0, { ...VirtioNet.makeHeader(), numBuffers: 0x0102, gsoType: 0x81 })
    expect(VirtioNet.numBuffers(b)).toBe(0x0102)
    expect(b[1]).toBe(0x81)
    VirtioNet.writeFields(b, 0, 1, 1, 52, 1448, 20, 16)
    expect(b).toEqual(vnet({ flags: 1, gsoType: 1, hdrLen: 52, gsoSize: 1448, csumStart: 20, csumOffset: 16 }))
  })

  it("writes an all-zero plain header", () => {
    const b = new Uint8Array(14).fill(0xaa)
    VirtioNet.writePlain(b, 1)
    expect(Array.from(b)).toEqual([0xaa, ...new Array<number>(12).fill(0), 0xaa])
  })
})

const needsCsum = (start: number, offset = 16) => ({
  flags: VirtioNet.Flag.NeedsCsum,
  csumStart: start,
  csumOffset: offset
})

describe("VirtioNet.finishChecksum", () => {
  it("completes a partial TCP checksum (IPv4, timestamps, odd payload)", () => {
    const spec = { options: timestamps(1, 2), payload: new Uint8Array([1, 2, 3, 4, 5]) }
    const partial = tcpPacket({ ...spec, checksum: "partial" })
    expect(partial).not.toEqual(tcpPacket(spec))
    expect(VirtioNet.finishChecksum(partial, needsCsum(20))).toBe(true)
    expect(partial).toEqual(tcpPacket(spec))
  })

  it("completes a partial TCPv6 checksum", () => {
    const spec = { v6: true, payload: new Uint8Array(1001).fill(0x5a) }
    const partial = tcpPacket({ ...spec, checksum: "partial" })
    expect(VirtioNet.finishChecksum(partial, needsCsum(40))).toBe(true)
    expect(partial).toEqual(tcpPacket(spec))
  })

  it("stores a zero result as 0xffff (UDP, RFC 768)", () => {
    // UDP header at 20 with the checksum at +6: make the whole range sum to 0xffff so the checksum computes to 0.
    const p = new Uint8Array(28 + 2)
    p[20] = 0x12
    p[21] = 0x34
    const rest = refSum(p.subarray(20))
    p[28] = (0xffff - rest) >>> 8
    p[29] = (0xffff - rest) & 0xff
    expect(refSum(p.subarray(20))).toBe(0xffff)
    expect(VirtioNet.finishChecksum(p, needsCsum(20, 6))).toBe(true)
    expect([p[26], p[27]]).toEqual([0xff, 0xff])
  })

  it("leaves a packet without NEEDS_CSUM alone", () => {
    const p = tcpPacket({ checksum: "partial" })
    const copy = p.slice()
    expect(VirtioNet.finishChecksum(p, { flags: VirtioNet.Flag.DataValid, csumStart: 20, csumOffset: 16 })).toBe(true)
    expect(p).toEqual(copy)
  })

  it("refuses offsets outside the packet and changes nothing", () => {
    const p = tcpPacket({ checksum: "partial" })
    const copy = p.slice()
    expect(VirtioNet.finishChecksum(p, needsCsum(p.length - 1, 0))).toBe(false)
    expect(VirtioNet.finishChecksum(p, needsCsum(20, p.length))).toBe(false)
    expect(VirtioNet.finishChecksum(p, needsCsum(0xffff, 16))).toBe(false)
    expect(p).toEqual(copy)
    // The field may end exactly at the last byte.
    expect(VirtioNet.finishChecksum(p, needsCsum(p.length - 2, 0))).toBe(true)
  })

  it.prop(
    "a completed partial checksum equals the reference full checksum",
    { flow: arbFlow, payload: fc.uint8Array({ maxLength: 3000 }) },
    ({ flow, payload }) => {
      const spec = { ...flow, payload }
      const p = tcpPacket({ ...spec, checksum: "partial" })
      expect(VirtioNet.finishChecksum(p, needsCsum(l4Of(spec)))).toBe(true)
      expect(p).toEqual(tcpPacket(spec))
    },
    { fastCheck: { numRuns: 1000 } }
  )

  it.prop(
    "never throws nor reads outside the packet, whatever the bytes and offsets",
    {
      bytes: fc.uint8Array({ maxLength: 200 }),
      flags: fc.integer({ min: 0, max: 255 }),
      start: fc.oneof(fc.integer({ min: 0, max: 210 }), fc.integer({ min: 0, max: 0xffff })),
      offset: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffff }))
    },
    ({ bytes, flags, offset, start }) => {
      const ok = VirtioNet.finishChecksum(guarded(bytes), { flags, csumStart: start, csumOffset: offset })
      expect(ok).toBe((flags & 1) === 0 || start + offset + 2 <= bytes.length)
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 60_000 }
  )
})
