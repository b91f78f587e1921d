import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Arena from "../../src/domain/Arena.js"
import { encapBatch, HEADROOM } from "../../src/domain/Encap.js"
import * as Gso from "../../src/domain/Gso.js"
import * as VirtioNet from "../../src/domain/VirtioNet.js"
import { encapContext, encapOut, guarded, ip4 } from "./helpers.js"
import {
  ACK,
  arbFlow,
  concat,
  CWR,
  ECE,
  expectedSegments,
  expectSamePackets,
  FIN,
  headerLengthOf,
  l4Of,
  patternedFrom,
  plainFrame,
  PSH,
  superFrame,
  tcpChecksumValid,
  tcpPacket,
  type TcpSpec,
  timestamps,
  arbUdpFlow,
  expectedUdpSegments,
  udpChecksumValid,
  udpL4Of,
  udpPacket,
  udpSuperFrame,
  type UdpSpec,
  vnet
} from "./offloadRef.js"

const header = (frame: Uint8Array) => VirtioNet.read(frame, 0, VirtioNet.makeHeader())

/** Segments the super-packet frame (header + packet) into a fresh arena. */
const run = (frame: Uint8Array, arenaSize = 1 << 20) => {
  const out: Array<Uint8Array> = []
  const packet = frame.subarray(12)
  const result = Gso.segment(packet, header(frame), out, Arena.make(arenaSize))
  return { result, out, packet }
}

const copies = (xs: ReadonlyArray<Uint8Array>) => xs.map((x) => x.slice())

const bulk: TcpSpec = {
  options: timestamps(0x01020304, 0x0a0b0c0d),
  seq: 0x10000000,
  id: 0x2000,
  payload: patternedFrom(44 * 1448 + 1000, 0)
}

describe("Gso.segment", () => {
  it("cuts an IPv4 64 KB super-packet with timestamps into 1448-byte segments and a short last one", () => {
    const { out, result } = run(superFrame(bulk, 1448))
    const expected = expectedSegments(bulk, 1448)
    expect(result).toBe(45)
    expect(out.length).toBe(45)
    expect(out[44]!.length).toBe(52 + 1000)
    expect(copies(out)).toEqual(expected)
  })

  it("cuts an IPv6 super-packet with an odd MSS and an odd payload length", () => {
    const spec: TcpSpec = { v6: true, tos: 0x28, flow: 0xabcde, seq: 5, payload: patternedFrom(10_001, 5) }
    const { out, result } = run(superFrame(spec, 1427))
    expect(result).toBe(8)
    expect(copies(out)).toEqual(expectedSegments(spec, 1427))
    for (const s of out) expect(tcpChecksumValid(s, 40)).toBe(true)
  })

  it("puts CWR on the first segment only, FIN and PSH on the last only, ECE on all", () => {
    const spec: TcpSpec = { flags: ACK | PSH | FIN | CWR | ECE, payload: patternedFrom(3000, 0) }
    const { out } = run(superFrame(spec, 1000))
    expect(out.map((s) => s[33])).toEqual([ACK | CWR | ECE, ACK | ECE, ACK | ECE | PSH | FIN])
    expect(copies(out)).toEqual(expectedSegments(spec, 1000))
  })

  it("wraps the IPv4 ID and the sequence number", () => {
    const spec: TcpSpec = { id: 0xfffe, seq: 0xffffff00, df: false, payload: patternedFrom(1000, 0) }
    const { out } = run(superFrame(spec, 300))
    expect(out.map((s) => (s[4]! << 8) | s[5]!)).toEqual([0xfffe, 0xffff, 0, 1])
    expect(out.map((s) => new DataView(s.buffer, s.byteOffset).getUint32(24))).toEqual([
      0xffffff00,
      (0xffffff00 + 300) >>> 0,
      (0xffffff00 + 600) >>> 0,
      (0xffffff00 + 900) >>> 0
    ])
    expect(copies(out)).toEqual(expectedSegments(spec, 300))
  })

  it("copies IPv4 options into every segment", () => {
    const spec: TcpSpec = { ipOptions: new Uint8Array([0x94, 4, 0, 0]), payload: patternedFrom(2500, 0) }
    const { out } = run(superFrame(spec, 1200))
    expect(copies(out)).toEqual(expectedSegments(spec, 1200))
  })

  it("copies an IPv6 hop-by-hop header into every segment", () => {
    const spec: TcpSpec = { v6: true, hopByHop: true, payload: patternedFrom(2500, 0) }
    const { out } = run(superFrame(spec, 1200))
    expect(out.length).toBe(3)
    expect(copies(out)).toEqual(expectedSegments(spec, 1200))
  })

  it("leaves each segment HEADROOM bytes in front, where encapBatch writes the outer header in place", () => {
    const { out } = run(superFrame(bulk, 1448))
    for (const s of out) expect(s.byteOffset).toBeGreaterThanOrEqual(HEADROOM)
    const encap = encapOut()
    encapBatch(out, encapContext({ pathMtuOf: () => 65535 }), encap)
    expect(encap.frames.length).toBe(45)
    encap.frames.forEach((f, i) => {
      expect(f.buffer).toBe(out[i]!.buffer)
      expect(f.byteOffset).toBe(out[i]!.byteOffset - HEADROOM)
      expect(f.subarray(HEADROOM)).toEqual(expectedSegments(bulk, 1448)[i])
    })
  })

  it("keeps a super-packet whose payload fits one segment whole, with its checksum completed in place", () => {
    const spec: TcpSpec = { v6: true, flags: ACK | PSH, payload: patternedFrom(1448, 0) }
    const { out, packet, result } = run(superFrame(spec, 1448))
    expect(result).toBe(1)
    expect(out[0]).toBe(packet)
    expect(packet).toEqual(tcpPacket(spec))
  })

  it("completes the checksum of a packet that is not a super-packet, in place", () => {
    const spec: TcpSpec = { flags: 0x12, options: timestamps(9, 0) }
    const frame = concat(vnet({ flags: 1, csumStart: 20, csumOffset: 16 }), tcpPacket({ ...spec, checksum: "partial" }))
    const { out, packet, result } = run(frame)
    expect(result).toBe(1)
    expect(out[0]).toBe(packet)
    expect(packet).toEqual(tcpPacket(spec))
  })

  it("passes a packet without flags through untouched", () => {
    const p = tcpPacket({ checksum: "bad" })
    const { out, packet } = run(plainFrame(p))
    expect(out[0]).toBe(packet)
    expect(packet).toEqual(p)
  })

  it("refuses what it cannot segment and appends nothing", () => {
    const v4 = superFrame(bulk, 1448)
    const cases: Array<[Uint8Array, number]> = [
      // A TCPv6 gso_type on an IPv4 packet.
      [concat(vnet({ flags: 1, gsoType: 4, gsoSize: 1448 }), v4.subarray(12)), Gso.GsoError.BadHeader],
      // UDP_L4 on a TCP packet.
      [concat(vnet({ flags: 1, gsoType: 5, gsoSize: 1448 }), v4.subarray(12)), Gso.GsoError.BadHeader],
      // UDP fragmentation offload (UFO) is never offered.
      [concat(vnet({ gsoType: 3, gsoSize: 1448 }), v4.subarray(12)), Gso.GsoError.Unsupported],
      // gso_size 0
      [concat(vnet({ gsoType: 1 }), v4.subarray(12)), Gso.GsoError.BadHeader],
      // The IPv4 total length says more than was read.
      [v4.subarray(0, v4.length - 1), Gso.GsoError.Truncated],
      // csum_offset beyond the end.
      [concat(vnet({ flags: 1, csumStart: 20, csumOffset: 60 }), tcpPacket({})), Gso.GsoError.BadChecksumOffsets],
      [concat(vnet({ gsoType: 1, gsoSize: 100 }), tcpPacket({}).subarray(0, 30)), Gso.GsoError.Truncated],
      [vnet(), Gso.GsoError.Truncated]
    ]
    // An IPv6 routing header before TCP.
    const routed = superFrame({ v6: true, payload: new Uint8Array(3000) }, 1000)
    routed[12 + 6] = 43
    cases.push([routed, Gso.GsoError.Unsupported])
    // A TCP data offset below 5.
    const short = superFrame({ payload: new Uint8Array(3000) }, 1000)
    short[12 + 32] = 0x40
    cases.push([short, Gso.GsoError.BadHeader])
    for (const [frame, error] of cases) {
      const before = frame.slice()
      const { out, result } = run(frame)
      expect(result).toBe(error)
      expect(out).toEqual([])
      expect(frame).toEqual(before)
    }
  })

  it("gives segments buffers of their own, with headroom, when the arena is full", () => {
    const { out } = run(superFrame(bulk, 1448), 4096)
    expect(copies(out)).toEqual(expectedSegments(bulk, 1448))
    const buffers = new Set(out.map((s) => s.buffer))
    expect(buffers.size).toBeGreaterThan(40)
    for (const s of out) expect(s.byteOffset).toBeGreaterThanOrEqual(HEADROOM)
  })
})

describe("Gso.segmentBatch", () => {
  it("segments every frame, counts the ones it cannot, and reuses its arena", () => {
    const arena = Arena.make(1 << 20)
    const small = tcpPacket({ v6: true, payload: new Uint8Array(10) })
    const frames = [
      superFrame(bulk, 1448),
      plainFrame(small),
      concat(vnet({ gsoType: 3, gsoSize: 100 }), tcpPacket({})),
      new Uint8Array(12),
      superFrame({ v6: true, payload: patternedFrom(3000, 0) }, 1500)
    ]
    const out: Array<Uint8Array> = []
    expect(Gso.segmentBatch(frames, out, arena)).toBe(2)
    expect(out.length).toBe(45 + 1 + 2)
    expect(out[45]).toEqual(small)
    expect(copies(out.slice(46))).toEqual(expectedSegments({ v6: true, payload: patternedFrom(3000, 0) }, 1500))
    const used = arena.used
    const again: Array<Uint8Array> = []
    Gso.segmentBatch(frames.slice(0, 1), again, arena)
    expect(again[0]!.byteOffset).toBe(out[0]!.byteOffset)
    expect(arena.used).toBeLessThan(used)
  })
})

describe("Gso properties", () => {
  const arbSuper = fc.record({
    flow: arbFlow,
    flags: fc.subarray([PSH, FIN, CWR, ECE]).map((fs) => fs.reduce((a, b) => a | b, ACK)),
    length: fc.integer({ min: 0, max: 20_000 }),
    mss: fc.integer({ min: 1, max: 2000 })
  }).filter(({ length, mss }) => length / mss <= 200)

  it.prop(
    "segments are the reference segments: payloads concatenate to the original, sequence numbers advance",
    { s: arbSuper, at: fc.integer({ min: 0, max: 0xffffffff }) },
    ({ at, s }) => {
      const spec: TcpSpec = { ...s.flow, flags: s.flags, payload: patternedFrom(s.length, at) }
      const { out, result } = run(superFrame(spec, s.mss))
      const expected = expectedSegments(spec, s.mss)
      expect(result).toBe(expected.length)
      expectSamePackets(out, expected, (a, b) => expect(a).toEqual(b))
      const hl = headerLengthOf(spec)
      const payloads = concat(...out.map((seg) => seg.subarray(hl)))
      expectSamePackets([payloads], [spec.payload!], (a, b) => expect(a).toEqual(b))
      for (const seg of out) expect(tcpChecksumValid(seg, l4Of(spec))).toBe(true)
    },
    { fastCheck: { numRuns: 1000 } }
  )

  /** Arbitrary frames: random bytes, often made to look like a super-packet so the later checks run too. */
  const arbFrame = fc.record({
    bytes: fc.uint8Array({ maxLength: 400 }),
    flags: fc.integer({ min: 0, max: 3 }),
    gsoType: fc.constantFrom(0, 1, 3, 4, 5, 0x81, 0x84, 0xff),
    gsoSize: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffff })),
    csumStart: fc.integer({ min: 0, max: 500 }),
    csumOffset: fc.integer({ min: 0, max: 40 }),
    steer: fc.constantFrom("none", "v4", "v6")
  }).map((f) => {
    const b = f.bytes
    if (f.steer === "v4" && b.length >= 20) {
      b[0] = 0x40 | (b[0]! & 0x0f)
      b[2] = b.length >>> 8
      b[3] = b.length & 0xff
      b[9] = 6
      b[6] &= 0x40
      b[7] = 0
    } else if (f.steer === "v6" && b.length >= 40) {
      b[0] = 0x60 | (b[0]! & 0x0f)
      b[4] = (b.length - 40) >>> 8
      b[5] = (b.length - 40) & 0xff
      b[6] = [6, 0, 60, 43][b[6]! & 3]!
    }
    return { ...f, bytes: b }
  })

  it.prop(
    "never throws nor reads outside the packet; an error leaves nothing behind",
    { f: arbFrame },
    ({ f }) => {
      const out: Array<Uint8Array> = []
      const hdr = { ...VirtioNet.makeHeader(), ...f }
      const result = Gso.segment(guarded(f.bytes), hdr, out, Arena.make(1 << 16))
      if (result < 0) expect(out.length).toBe(0)
      else expect(out.length).toBe(result)
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 60_000 }
  )
})

describe("Gso.segment, UDP (gso_type UDP_L4)", () => {
  const flood: UdpSpec = { id: 0x4000, payload: patternedFrom(20 * 64, 3) }

  it("cuts an IPv4 super-packet of twenty 64-byte datagrams, numbering their IDs as inet_gso_segment does", () => {
    const { out, result } = run(udpSuperFrame(flood, 64))
    expect(result).toBe(20)
    expectSamePackets(out, expectedUdpSegments(flood, 64), (a, b) => expect(a).toEqual(b))
    expect(out.map((s) => (s[4]! << 8) | s[5]!)).toEqual(Array.from({ length: 20 }, (_, k) => 0x4000 + k))
    for (const s of out) {
      expect(s.length).toBe(20 + 8 + 64)
      expect((s[24]! << 8) | s[25]!).toBe(72)
      expect(udpChecksumValid(s, 20)).toBe(true)
    }
  })

  it("makes the last datagram shorter, with its own lengths", () => {
    const spec: UdpSpec = { payload: patternedFrom(1000, 9) }
    const { out } = run(udpSuperFrame(spec, 300))
    expect(out.map((s) => s.length)).toEqual([328, 328, 328, 128])
    expect(out.map((s) => (s[24]! << 8) | s[25]!)).toEqual([308, 308, 308, 108])
    expect(copies(out)).toEqual(expectedUdpSegments(spec, 300))
  })

  it("cuts an IPv6 super-packet with an odd size and an odd length, told apart by the version nibble", () => {
    const spec: UdpSpec = { v6: true, tos: 0xb8, flow: 0xfedcb, payload: patternedFrom(10_001, 1) }
    const { out, result } = run(udpSuperFrame(spec, 1233))
    expect(result).toBe(9)
    expect(copies(out)).toEqual(expectedUdpSegments(spec, 1233))
    expect(out[8]!.length).toBe(48 + 10_001 - 8 * 1233)
    for (const s of out) expect(udpChecksumValid(s, 40)).toBe(true)
  })

  it("copies IPv4 options and an IPv6 hop-by-hop header into every datagram", () => {
    for (const spec of [
      { ipOptions: new Uint8Array([0x94, 4, 0, 0]), payload: patternedFrom(700, 0) },
      { v6: true, hopByHop: true, payload: patternedFrom(700, 0) }
    ] satisfies ReadonlyArray<UdpSpec>) {
      const { out } = run(udpSuperFrame(spec, 250))
      expect(out.length).toBe(3)
      expect(copies(out)).toEqual(expectedUdpSegments(spec, 250))
      for (const s of out) expect(udpChecksumValid(s, udpL4Of(spec))).toBe(true)
    }
  })

  it("wraps the IPv4 ID", () => {
    const spec: UdpSpec = { id: 0xfffe, df: false, payload: patternedFrom(400, 0) }
    const { out } = run(udpSuperFrame(spec, 100))
    expect(out.map((s) => (s[4]! << 8) | s[5]!)).toEqual([0xfffe, 0xffff, 0, 1])
    expect(copies(out)).toEqual(expectedUdpSegments(spec, 100))
  })

  it("sends a computed checksum of 0 as 0xffff (RFC 768, RFC 8200 8.1)", () => {
    for (const v6 of [false, true]) {
      // The second datagram's last word is chosen so that its checksum comes out 0: the field value of the same
      // datagram with that word 0 (adding x to a sum whose complement is x gives 0xffff).
      const payload = patternedFrom(200, 5)
      payload[198] = 0
      payload[199] = 0
      const probe = udpPacket({ v6, id: 0x4001, payload: payload.subarray(100) })
      const l4 = v6 ? 40 : 20
      payload[198] = probe[l4 + 6]!
      payload[199] = probe[l4 + 7]!
      const spec: UdpSpec = { v6, id: 0x4000, payload }
      const { out } = run(udpSuperFrame(spec, 100))
      expect((out[1]![l4 + 6]! << 8) | out[1]![l4 + 7]!).toBe(0xffff)
      expect(udpChecksumValid(out[1]!, l4)).toBe(true)
      expect(copies(out)).toEqual(expectedUdpSegments(spec, 100))
    }
  })

  it("passes a super-packet that fits one datagram through in place, its length and checksum completed", () => {
    for (const v6 of [false, true]) {
      const spec: UdpSpec = { v6, payload: patternedFrom(64, 0) }
      const { out, packet, result } = run(udpSuperFrame(spec, 64))
      expect(result).toBe(1)
      expect(out[0]).toBe(packet)
      expect(packet).toEqual(udpPacket(spec))
    }
    // A UDP header and nothing else.
    const empty = run(udpSuperFrame({ payload: new Uint8Array(0) }, 64))
    expect(empty.result).toBe(1)
    expect(empty.packet).toEqual(udpPacket({ payload: new Uint8Array(0) }))
  })

  it("gives each datagram HEADROOM bytes in front of it", () => {
    const { out } = run(udpSuperFrame(flood, 64))
    for (const s of out) expect(s.byteOffset).toBeGreaterThanOrEqual(HEADROOM)
  })

  it("refuses what it cannot segment, appends nothing and leaves the packet unchanged", () => {
    const good = udpSuperFrame(flood, 64)
    const hdr = good.subarray(0, 12)
    const ip = good.subarray(12)
    const withIp = (edit: (p: Uint8Array) => void, length = ip.length) => {
      const p = ip.slice(0, length)
      edit(p)
      return concat(hdr, p)
    }
    const setLength4 = (p: Uint8Array) => {
      p[2] = p.length >>> 8
      p[3] = p.length & 0xff
    }
    const cases: Array<[string, Uint8Array, number]> = [
      ["a UDP header cut short", withIp(setLength4, 25), Gso.GsoError.Truncated],
      ["no UDP header at all", withIp(setLength4, 20), Gso.GsoError.Truncated],
      ["IPv4 options running past the end", withIp((p) => (p[0] = 0x4f), 40), Gso.GsoError.Truncated],
      ["an IHL below 5", withIp((p) => (p[0] = 0x44)), Gso.GsoError.BadHeader],
      ["a total length that disagrees with the bytes", withIp(() => {}, ip.length - 1), Gso.GsoError.Truncated],
      ["gso_size 0", concat(vnet({ flags: 1, gsoType: 5, csumStart: 20, csumOffset: 6 }), ip), Gso.GsoError.BadHeader],
      ["the ECN bit", concat(vnet({ flags: 1, gsoType: 0x85, gsoSize: 64 }), ip), Gso.GsoError.BadHeader],
      ["an IPv4 fragment", withIp((p) => (p[6] = 0x20)), Gso.GsoError.BadHeader],
      ["not UDP", withIp((p) => (p[9] = 6)), Gso.GsoError.BadHeader],
      ["version 5", withIp((p) => (p[0] = 0x55)), Gso.GsoError.BadHeader],
      ["an empty packet", concat(hdr), Gso.GsoError.Truncated],
      ["a TCPv6 packet", concat(hdr, tcpPacket({ v6: true, payload: new Uint8Array(300) })), Gso.GsoError.Unsupported]
    ]
    const v6 = udpSuperFrame({ v6: true, payload: patternedFrom(300, 0) }, 100)
    const short6 = v6.slice(0, 12 + 44)
    short6[12 + 5] = 4
    cases.push(["an IPv6 UDP header cut short", short6, Gso.GsoError.Truncated])
    const routed = v6.slice()
    routed[12 + 6] = 43
    cases.push(["an IPv6 routing header", routed, Gso.GsoError.Unsupported])
    const longExt = udpSuperFrame({ v6: true, hopByHop: true, payload: patternedFrom(300, 0) }, 100)
    longExt[12 + 41] = 200
    cases.push(["an extension header running past the end", longExt, Gso.GsoError.Truncated])
    for (const [what, frame, error] of cases) {
      const before = frame.slice()
      const { out, result } = run(frame)
      expect(result, what).toBe(error)
      expect(out, what).toEqual([])
      expect(frame, what).toEqual(before)
    }
  })

  it("is used by segmentBatch", () => {
    const out: Array<Uint8Array> = []
    const frames = [udpSuperFrame(flood, 64), plainFrame(udpPacket({ v6: true })), concat(vnet({ gsoType: 5 }))]
    expect(Gso.segmentBatch(frames, out, Arena.make(1 << 16))).toBe(1)
    expect(copies(out)).toEqual([...expectedUdpSegments(flood, 64), udpPacket({ v6: true })])
  })
})

describe("Gso properties, UDP", () => {
  it.prop(
    "datagrams are the reference datagrams: payloads concatenate to the original",
    {
      flow: arbUdpFlow,
      length: fc.integer({ min: 0, max: 6000 }),
      size: fc.integer({ min: 1, max: 1500 }),
      seed: fc.nat()
    },
    ({ flow, length, seed, size }) => {
      fc.pre(length / size <= 128)
      const spec: UdpSpec = { ...flow, payload: patternedFrom(length, seed) }
      const { out, result } = run(udpSuperFrame(spec, size), 1 << 17)
      const expected = expectedUdpSegments(spec, size)
      expect(result).toBe(expected.length)
      expectSamePackets(out, expected, (a, b) => expect(a).toEqual(b))
      const l4 = udpL4Of(spec)
      const payloads = concat(...out.map((d) => d.subarray(l4 + 8)))
      expectSamePackets([payloads], [spec.payload!], (a, b) => expect(a).toEqual(b))
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 120_000 }
  )

  /** Random bytes, usually dressed up as an IPv4 or IPv6 UDP super-packet so the later checks run too. */
  const arbUdpFrame = fc.record({
    bytes: fc.uint8Array({ maxLength: 300 }),
    flags: fc.integer({ min: 0, max: 3 }),
    gsoType: fc.constantFrom(5, 5, 5, 0x85),
    gsoSize: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0xffff })),
    steer: fc.constantFrom("none", "v4", "v6", "v6-ext")
  }).map((f) => {
    const b = f.bytes
    if (f.steer === "v4" && b.length >= 20) {
      b[0] = 0x40 | (b[0]! & 0x0f)
      b[2] = b.length >>> 8
      b[3] = b.length & 0xff
      b[9] = 17
      b[6] &= 0x40
      b[7] = 0
    } else if (f.steer.startsWith("v6") && b.length >= 40) {
      b[0] = 0x60 | (b[0]! & 0x0f)
      b[4] = (b.length - 40) >>> 8
      b[5] = (b.length - 40) & 0xff
      b[6] = f.steer === "v6" ? 17 : [0, 60][b[6]! & 1]!
    }
    return { ...f, bytes: b }
  })

  it.prop(
    "never throws nor reads outside the packet; an error leaves nothing behind",
    { f: arbUdpFrame },
    ({ f }) => {
      const out: Array<Uint8Array> = []
      const hdr = { ...VirtioNet.makeHeader(), flags: f.flags, gsoType: f.gsoType, gsoSize: f.gsoSize }
      const before = f.bytes.slice()
      const result = Gso.segment(guarded(f.bytes), hdr, out, Arena.make(1 << 16))
      if (result < 0) {
        expect(out.length).toBe(0)
        expect(f.bytes).toEqual(before)
      } else {
        expect(out.length).toBe(result)
      }
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 60_000 }
  )
})

// The reference builder agrees with itself on the one value that is easy to check by hand.
describe("offload reference builder", () => {
  it("builds the IPv4 header with the documented addresses", () => {
    const p = tcpPacket({})
    expect(new DataView(p.buffer).getUint32(12)).toBe(ip4("192.0.2.10"))
    expect(tcpChecksumValid(p, 20)).toBe(true)
    expect(tcpChecksumValid(tcpPacket({ checksum: "bad" }), 20)).toBe(false)
  })

  it("builds UDP datagrams whose checksum is right, absent or wrong as asked", () => {
    const p = udpPacket({ payload: patternedFrom(33, 0) })
    expect(new DataView(p.buffer).getUint32(16)).toBe(ip4("198.51.100.20"))
    expect(udpChecksumValid(p, 20)).toBe(true)
    expect(udpChecksumValid(udpPacket({ checksum: "bad" }), 20)).toBe(false)
    expect(udpChecksumValid(udpPacket({ checksum: "none" }), 20)).toBe(false)
    expect(udpChecksumValid(udpPacket({ v6: true, hopByHop: true, payload: patternedFrom(9, 1) }), 48)).toBe(true)
  })
})
