import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Arena from "../../src/domain/Arena.js"
import * as Gro from "../../src/domain/Gro.js"
import * as Gso from "../../src/domain/Gso.js"
import * as VirtioNet from "../../src/domain/VirtioNet.js"
import { fixV4Checksum, guarded, v4Packet, withHeadroom } from "./helpers.js"
import {
  ACK,
  arbFlow,
  burst,
  concat,
  CWR,
  ECE,
  expectedSegments,
  expectSamePackets,
  FIN,
  headerLengthOf,
  patternedFrom,
  plainFrame,
  PSH,
  RST,
  superFrame,
  SYN,
  tcpChecksumValid,
  tcpPacket,
  type TcpSpec,
  timestamps,
  arbUdpFlow,
  expectedUdpSegments,
  udpBurst,
  udpChecksumValid,
  udpL4Of,
  udpPacket,
  udpSuperFrame,
  type UdpSpec,
  URG
} from "./offloadRef.js"

const same = (a: unknown, b: unknown) => expect(a).toEqual(b)

const run = (packets: ReadonlyArray<Uint8Array>, headroom = 0, arenaSize = 1 << 20) => {
  const out: Array<Uint8Array> = []
  const merged = Gro.coalesce(packets, out, Arena.make(arenaSize), headroom)
  return { out, merged }
}

/** Damage the noise properties draw: a byte of a packet changed or the packet cut short, at drawn places. */
const arbPokes = fc.array(fc.record({ at: fc.nat(), offset: fc.nat(), value: fc.nat(255), cut: fc.boolean() }), {
  maxLength: 4
})
/** Random byte strings to slip in between the packets. */
const arbJunk = (maxBytes: number) =>
  fc.array(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ maxLength: maxBytes }) }), { maxLength: 3 })

/** `packets`, changed in place by `pokes` and with `junk` put in between: the noise properties' input. */
const damaged = (
  packets: Array<Uint8Array>,
  pokes: ReadonlyArray<{ at: number; offset: number; value: number; cut: boolean }>,
  junk: ReadonlyArray<{ at: number; bytes: Uint8Array }>
): Array<Uint8Array> => {
  for (const { at, cut, offset, value } of pokes) {
    if (packets.length === 0) break
    const i = at % packets.length
    const p = packets[i]!
    if (cut) packets[i] = p.slice(0, offset % (p.length + 1))
    else p[offset % p.length] = value
  }
  for (const { at, bytes } of junk) packets.splice(at % (packets.length + 1), 0, bytes)
  return packets
}

const flow: TcpSpec = { options: timestamps(0x11223344, 0x55667788), seq: 0x7fff0000, id: 0x0100 }
const flow6: TcpSpec = { ...flow, v6: true }

/** Segment `i` of a burst of `flow` with `mss`-byte payloads, with some fields overridden. */
const segment = (i: number, mss: number, over: TcpSpec) => {
  const seq = (flow.seq! + mss * i) >>> 0
  return tcpPacket({ ...flow, id: 0x100 + i, seq, payload: patternedFrom(mss, seq), ...over })
}

/** The super-packet frame expected for segments first..first+count-1 of a burst of `s` at `mss`. */
const merged = (s: TcpSpec, mss: number, total: number, first: number, count: number, flags = s.flags ?? ACK) => {
  const payload = patternedFrom(total, s.seq ?? 1000).subarray(first * mss, Math.min(total, (first + count) * mss))
  return superFrame({
    ...s,
    id: ((s.id ?? 0x1c46) + first) & 0xffff,
    seq: ((s.seq ?? 1000) + first * mss) >>> 0,
    flags,
    payload
  }, mss)
}

describe("Gro.coalesce", () => {
  it("merges 45 IPv4 segments of 1448 bytes with timestamps into one super-packet", () => {
    const segs = burst(flow, 1448, 45 * 1448)
    const { merged: n, out } = run(segs)
    expect(n).toBe(45)
    expectSamePackets(out, [merged(flow, 1448, 45 * 1448, 0, 45)], same)
    const h = VirtioNet.read(out[0]!, 0, VirtioNet.makeHeader())
    expect(h).toEqual({
      flags: 1,
      gsoType: VirtioNet.GsoType.TcpV4,
      hdrLen: 52,
      gsoSize: 1448,
      csumStart: 20,
      csumOffset: 16,
      numBuffers: 0
    })
    // The kernel completes the checksum from csum_start: the result must be the right TCP checksum.
    const packet = out[0]!.slice(12)
    expect(VirtioNet.finishChecksum(packet, h)).toBe(true)
    expect(tcpChecksumValid(packet, 20)).toBe(true)
  })

  it("merges IPv6 segments, the last one short, and sets the payload length", () => {
    const segs = burst(flow6, 1428, 5 * 1428 + 333)
    const { out } = run(segs)
    expectSamePackets(out, [merged(flow6, 1428, 5 * 1428 + 333, 0, 6)], same)
    expect(out[0]!.length).toBe(12 + 40 + 32 + 5 * 1428 + 333)
  })

  it("ends a group after a short segment and starts the next one", () => {
    const segs = [...burst(flow, 1000, 2500), ...burst({ ...flow, seq: flow.seq! + 2500, id: 0x103 }, 1000, 2000)]
    const { out } = run(segs)
    expectSamePackets(
      out,
      [merged(flow, 1000, 2500, 0, 3), merged({ ...flow, seq: flow.seq! + 2500, id: 0x103 }, 1000, 2000, 0, 2)],
      same
    )
  })

  it("takes a PSH or FIN segment as the last of its group", () => {
    for (const flag of [PSH, FIN, PSH | FIN]) {
      const segs = burst(flow, 500, 2500)
      segs[2] = segment(2, 500, { flags: ACK | flag })
      const { out } = run(segs)
      expect(out.length).toBe(2)
      expectSamePackets(out.slice(0, 1), [merged(flow, 500, 2500, 0, 3, ACK | flag)], same)
      expect(out[0]![12 + 33]).toBe(ACK | flag)
      expectSamePackets(out.slice(1), [merged(flow, 500, 2500, 3, 2)], same)
    }
  })

  it("never merges CWR, SYN, RST or URG segments; merges ECE when every segment has it", () => {
    for (const flag of [CWR, SYN, RST, URG]) {
      const segs = burst({ ...flow, flags: ACK }, 500, 2000)
      segs[1] = segment(1, 500, { flags: ACK | flag })
      const { out } = run(segs)
      expectSamePackets(out, [plainFrame(segs[0]!), plainFrame(segs[1]!), merged(flow, 500, 2000, 2, 2)], same)
    }
    // Not even when every segment has CWR: the super-packet would need the GSO ECN bit.
    const allCwr = [0, 1, 2].map((i) => segment(i, 500, { flags: ACK | CWR }))
    expectSamePackets(run(allCwr).out, allCwr.map(plainFrame), same)
    const ece = { ...flow, flags: ACK | ECE }
    expectSamePackets(run(burst(ece, 500, 1500)).out, [merged(ece, 500, 1500, 0, 3)], same)
    const mixed = burst(ece, 500, 1500)
    mixed[2] = burst(flow, 500, 1500)[2]!
    expectSamePackets(run(mixed).out, [merged(ece, 500, 1500, 0, 2), plainFrame(mixed[2]!)], same)
  })

  it("does not merge pure ACKs", () => {
    const acks = [0, 1, 2].map((i) => tcpPacket({ ...flow, id: 0x100 + i }))
    const { merged: n, out } = run(acks)
    expect(n).toBe(0)
    expectSamePackets(out, acks.map(plainFrame), same)
  })

  it("passes a segment with a bad checksum through alone and unchanged, and merges around it", () => {
    const segs = burst(flow, 500, 3000)
    segs[2] = segment(2, 500, { checksum: "bad" })
    const { out } = run(segs)
    expectSamePackets(out, [merged(flow, 500, 3000, 0, 2), plainFrame(segs[2]!), merged(flow, 500, 3000, 3, 3)], same)
  })

  it("passes a corrupt first segment alone and lets the next one start the group", () => {
    const segs = burst(flow, 500, 2000)
    segs[0] = tcpPacket({ ...flow, payload: patternedFrom(500, flow.seq!), checksum: "bad" })
    const { out } = run(segs)
    expectSamePackets(out, [plainFrame(segs[0]!), merged(flow, 500, 2000, 1, 3)], same)
  })

  it("splits where a field that must match differs", () => {
    const changes: ReadonlyArray<TcpSpec> = [
      { ack: 778 },
      { window: 503 },
      { options: timestamps(0x11223345, 0x55667788) },
      { tos: 3 }, // ECN CE
      { ttl: 63 },
      { df: false },
      { sport: 40001 },
      { dst: "198.51.100.21" },
      { id: 0x105 },
      { seq: flow.seq! + 1001 }
    ]
    for (const change of changes) {
      const segs = burst(flow, 500, 1500)
      const seq = change.seq ?? flow.seq! + 1000
      segs[2] = tcpPacket({ ...flow, id: 0x102, ...change, seq, payload: patternedFrom(500, seq) })
      const { out } = run(segs)
      expectSamePackets(out, [merged(flow, 500, 1500, 0, 2), plainFrame(segs[2]!)], same)
    }
    for (const change of [{ tos: 0x01 }, { flow: 0x54321 }, { ttl: 1 }, { src: "2001:db8:1::11" }] as const) {
      const segs = burst(flow6, 500, 1500)
      segs[2] = tcpPacket({ ...flow6, ...change, seq: flow.seq! + 1000, payload: patternedFrom(500, flow.seq! + 1000) })
      expectSamePackets(run(segs).out, [merged(flow6, 500, 1500, 0, 2), plainFrame(segs[2]!)], same)
    }
  })

  it("does not merge a segment larger than the first one's payload", () => {
    const a = tcpPacket({ ...flow, payload: patternedFrom(500, flow.seq!) })
    const b = tcpPacket({ ...flow, id: 0x101, seq: flow.seq! + 500, payload: patternedFrom(600, flow.seq! + 500) })
    expectSamePackets(run([a, b]).out, [plainFrame(a), plainFrame(b)], same)
  })

  it("accepts IPv4 IDs that wrap, or that stay fixed with DF, but not fixed without DF", () => {
    const wrap = { ...flow, id: 0xffff }
    expectSamePackets(run(burst(wrap, 500, 1500)).out, [merged(wrap, 500, 1500, 0, 3)], same)
    const fixed = burst(flow, 500, 1500).map((_, i) =>
      tcpPacket({ ...flow, seq: flow.seq! + 500 * i, payload: patternedFrom(500, flow.seq! + 500 * i) })
    )
    const { out } = run(fixed)
    expect(out.length).toBe(1)
    expectSamePackets(out, [superFrame({ ...flow, payload: patternedFrom(1500, flow.seq!) }, 500)], same)
    const noDf = fixed.map((_, i) =>
      tcpPacket({ ...flow, df: false, seq: flow.seq! + 500 * i, payload: patternedFrom(500, flow.seq! + 500 * i) })
    )
    expect(run(noDf).out.length).toBe(3)
    // Once incrementing, a repeated ID does not join.
    const inc = burst(flow, 500, 1500)
    inc[2] = tcpPacket({ ...flow, id: 0x101, seq: flow.seq! + 1000, payload: patternedFrom(500, flow.seq! + 1000) })
    expect(run(inc).out.length).toBe(2)
  })

  it("keeps every super-packet within 65535 bytes", () => {
    const segs = burst(flow, 1448, 46 * 1448)
    const { out } = run(segs)
    expectSamePackets(out, [merged(flow, 1448, 46 * 1448, 0, 45), plainFrame(segs[45]!)], same)
    expect(out[0]!.length - 12).toBe(52 + 45 * 1448)
  })

  it("does not merge IPv4 options, IPv6 extension headers, fragments or other protocols", () => {
    for (const s of [{ ...flow, ipOptions: new Uint8Array([1, 1, 1, 0]) }, { ...flow6, hopByHop: true }]) {
      const segs = burst(s, 500, 1000)
      expectSamePackets(run(segs).out, segs.map(plainFrame), same)
    }
    const frag = burst(flow, 500, 1000).map((p) => {
      const q = v4Packet({ proto: 6, id: 7, mf: true, payload: p.subarray(20) })
      return q
    })
    expectSamePackets(run(frag).out, frag.map(plainFrame), same)
    const udp = [v4Packet({ proto: 17 }), v4Packet({ proto: 17 })]
    expectSamePackets(run(udp).out, udp.map(plainFrame), same)
  })

  it("merges only consecutive runs: interleaved flows stay apart", () => {
    const a = burst(flow, 500, 1000)
    const b = burst({ ...flow, sport: 40001 }, 500, 1000)
    const { out } = run([a[0]!, b[0]!, a[1]!, b[1]!])
    expectSamePackets(out, [a[0]!, b[0]!, a[1]!, b[1]!].map(plainFrame), same)
  })

  it("writes a pass-through header in place when there is headroom, and copies otherwise", () => {
    const p = tcpPacket({ ...flow, flags: ACK | SYN })
    const roomy = withHeadroom(p, 20)
    const before = new Uint8Array(roomy.buffer).slice()
    const { out } = run([roomy], 20)
    expect(out[0]!.buffer).toBe(roomy.buffer)
    expect(out[0]!.byteOffset).toBe(roomy.byteOffset - 12)
    expect(out[0]).toEqual(plainFrame(p))
    // Only the 12 bytes in front changed.
    const after = new Uint8Array(roomy.buffer)
    after.forEach((v, i) => {
      if (i < 8 || i >= 20) expect(v).toBe(before[i])
    })
    const copied = run([roomy], 0).out[0]!
    expect(copied.buffer).not.toBe(roomy.buffer)
    expect(copied).toEqual(plainFrame(p))
    const tight = withHeadroom(p, 11)
    const copiedTight = run([tight], 20).out[0]!
    expect(copiedTight.buffer).not.toBe(tight.buffer)
    expect(copiedTight).toEqual(plainFrame(p))
  })

  it("builds super-packets in buffers of their own when the arena is full", () => {
    const segs = burst(flow, 1448, 10 * 1448)
    const { out } = run(segs, 0, 100)
    expectSamePackets(out, [merged(flow, 1448, 10 * 1448, 0, 10)], same)
  })
})

/** Packet mutations for the batch properties. */
type Edit = "none" | "bad-checksum" | "drop" | "swap" | "pure-ack" | "udp" | "cwr" | "psh"

const arbBatchOf = (maxLength: number, maxMss: number) => fc.record({
  flows: fc.array(arbFlow, { minLength: 1, maxLength: 3 }),
  mss: fc.integer({ min: 1, max: maxMss }),
  lengths: fc.array(fc.integer({ min: 0, max: maxLength }), { minLength: 1, maxLength: 4 }),
  edits: fc.array(
    fc.record({
      at: fc.nat(),
      edit: fc.constantFrom<Edit>("none", "bad-checksum", "drop", "swap", "pure-ack", "udp", "cwr", "psh")
    }),
    { maxLength: 4 }
  )
}).filter(({ lengths, mss }) => lengths.every((n) => n / mss <= 60))

const arbBatch = arbBatchOf(6000, 1500)

/** Bursts of one to three flows in a row, with a few segments corrupted, dropped, swapped or replaced. */
const makeBatch = ({ edits, flows, lengths, mss }: typeof arbBatch extends fc.Arbitrary<infer T> ? T : never) => {
  const packets: Array<Uint8Array> = []
  lengths.forEach((n, i) => {
    const f = flows[i % flows.length]!
    packets.push(...burst({ ...f, df: true }, mss, n).filter((p) => p.length > headerLengthOf(f) || n === 0))
  })
  for (const { at, edit } of edits) {
    if (packets.length === 0) break
    const i = at % packets.length
    const p = packets[i]!
    const l4 = p[0]! >>> 4 === 6 ? 40 : 20
    if (edit === "bad-checksum") p[l4 + 16] ^= 0x40
    else if (edit === "drop") packets.splice(i, 1)
    else if (edit === "swap" && i + 1 < packets.length) packets.splice(i, 2, packets[i + 1]!, p)
    else if (edit === "pure-ack") {
      const ack = p.slice(0, (p[l4 + 12]! >>> 4) * 4 + l4)
      if (l4 === 20) {
        ack[2] = ack.length >>> 8
        ack[3] = ack.length & 0xff
        fixV4Checksum(ack)
      } else {
        ack[4] = (ack.length - 40) >>> 8
        ack[5] = (ack.length - 40) & 0xff
      }
      packets.splice(i, 0, ack)
    }
    else if (edit === "udp") packets.splice(i, 0, v4Packet({ proto: 17 }))
    else if (edit === "cwr" || edit === "psh") {
      // A flag change with the checksum fixed incrementally by hand: the flag byte is the low byte of a word.
      const bit = edit === "cwr" ? CWR : PSH
      const old = p[l4 + 13]!
      p[l4 + 13] = old | bit
      const sum = ((~((p[l4 + 16]! << 8) | p[l4 + 17]!) & 0xffff) + ((p[l4 + 13]! - old) & 0xffff))
      const folded = ~((sum & 0xffff) + (sum >>> 16)) & 0xffff
      p[l4 + 16] = folded >>> 8
      p[l4 + 17] = folded & 0xff
    }
  }
  return packets
}

/**
 * A TCP NEEDS_CSUM frame as the kernel takes it: a merged group, or a super-packet from the receiving host's GRO passed
 * through (`Gro.superPacketL4`; the only kind that may have no GSO type, or IPv4 options). The checksum field inside
 * the packet at csum_start + 16, a TCP GSO type of the packet's IP version (the ECN bit aside), a segment size with
 * more payload than one segment, at most 64 KB.
 */
const expectKernelTakes = (o: Uint8Array, hdr: VirtioNet.Header) => {
  const ip = o.subarray(12)
  const v6 = ip[0]! >>> 4 === 6
  const passedThrough = Gro.superPacketL4(ip)
  expect([hdr.flags, hdr.csumOffset]).toEqual([VirtioNet.Flag.NeedsCsum, 16])
  expect(hdr.csumStart).toBe(passedThrough >= 0 ? passedThrough : v6 ? 40 : 20)
  expect(hdr.csumStart + hdr.csumOffset + 2).toBeLessThanOrEqual(ip.length)
  expect(ip.length).toBeLessThanOrEqual(0xffff)
  if (hdr.gsoType === VirtioNet.GsoType.None) {
    expect(passedThrough).toBeGreaterThanOrEqual(0)
    return
  }
  expect(hdr.gsoType & ~VirtioNet.GsoType.Ecn).toBe(v6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4)
  if (passedThrough < 0) expect(hdr.gsoType & VirtioNet.GsoType.Ecn).toBe(0)
  expect(hdr.gsoSize).toBeGreaterThan(0)
  expect(ip.length - hdr.hdrLen).toBeGreaterThan(hdr.gsoSize)
}

describe("Gro properties", () => {
  it.prop(
    "gro(gso(x)) gives x back: one super-packet, or the CWR segment alone and the rest merged",
    {
      flow: arbFlow,
      flags: fc.subarray([PSH, FIN, CWR, ECE]).map((fs) => fs.reduce((a, b) => a | b, ACK)),
      length: fc.integer({ min: 1, max: 30_000 }),
      mss: fc.integer({ min: 1, max: 2000 })
    },
    ({ flags, flow: f, length, mss }) => {
      const hl = headerLengthOf(f)
      const size = Math.min(length, 0xffff - hl)
      fc.pre(size / mss <= 200)
      const spec: TcpSpec = { ...f, flags, payload: patternedFrom(size, f.seq) }
      const frame = superFrame(spec, mss)
      const segments: Array<Uint8Array> = []
      Gso.segment(frame.subarray(12), VirtioNet.read(frame, 0, VirtioNet.makeHeader()), segments, Arena.make(1 << 17))
      const { out } = run(segments, 20)
      const count = Math.ceil(size / mss)
      const reference = expectedSegments(spec, mss)
      let expected: Array<Uint8Array>
      if (count === 1) expected = [plainFrame(reference[0]!)]
      else if ((flags & CWR) === 0) expected = [frame]
      else if (count === 2) expected = reference.map(plainFrame)
      else {
        const rest = { ...spec, id: (f.id + 1) & 0xffff, seq: (f.seq + mss) >>> 0, flags: flags & ~CWR }
        expected = [plainFrame(reference[0]!), superFrame({ ...rest, payload: spec.payload!.subarray(mss) }, mss)]
      }
      expectSamePackets(out, expected, same)
    },
    { fastCheck: { numRuns: 1000 } }
  )

  it.prop(
    "loses, reorders and changes nothing: the output segmented again is the input",
    { batch: arbBatch },
    ({ batch }) => {
      const packets = makeBatch(batch)
      const originals = packets.map((p) => p.slice())
      const { out } = run(packets.map((p) => withHeadroom(p)), 20)
      const again: Array<Uint8Array> = []
      const arena = Arena.make(1 << 16)
      const hdr = VirtioNet.makeHeader()
      for (const frame of out) {
        VirtioNet.read(frame, 0, hdr)
        if (hdr.gsoType !== 0) {
          // A super-packet's completed checksum is right, and every segment in it was checked.
          const whole = frame.slice(12)
          VirtioNet.finishChecksum(whole, hdr)
          expect(tcpChecksumValid(whole, hdr.csumStart)).toBe(true)
        }
        expect(Gso.segment(frame.slice(12), hdr, again, arena)).toBeGreaterThan(0)
      }
      expectSamePackets(again, originals, same)
    },
    { fastCheck: { numRuns: 1000 } }
  )

  /** Valid bursts with random bytes changed, packets cut short, and random byte strings put in between. */
  const arbNoise = fc.record({
    // Small: every byte read goes through the guard.
    batch: arbBatchOf(300, 150),
    pokes: arbPokes,
    junk: arbJunk(120)
  }).map(({ batch, junk, pokes }) => {
    return damaged(makeBatch(batch), pokes, junk)
  })

  it.prop(
    "never throws nor reads outside the packets, and writes only headers the kernel accepts",
    { packets: arbNoise, headroom: fc.constantFrom(0, 20) },
    ({ headroom, packets }) => {
      const input = packets.map((p) => guarded(headroom === 0 ? p : withHeadroom(p)))
      const { out } = run(input, headroom)
      expect(out.length === 0).toBe(input.length === 0)
      expect(out.length).toBeLessThanOrEqual(input.length)
      const hdr = VirtioNet.makeHeader()
      for (const o of out) {
        VirtioNet.read(o, 0, hdr)
        if (hdr.flags === 0) {
          expect(hdr).toEqual(VirtioNet.makeHeader())
        } else {
          expectKernelTakes(o, hdr)
        }
      }
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 60_000 }
  )
})

describe("Gro then Gso on a realistic bulk batch", () => {
  it("round-trips 45 segments byte for byte", () => {
    const segs = burst(flow6, 1428, 45 * 1428)
    const { out } = run(segs)
    const again: Array<Uint8Array> = []
    Gso.segment(out[0]!.subarray(12), VirtioNet.read(out[0]!, 0, VirtioNet.makeHeader()), again, Arena.make(1 << 17))
    expectSamePackets(again, segs, same)
    expect(concat(...again.map((s) => s.subarray(72)))).toEqual(patternedFrom(45 * 1428, flow.seq!))
  })
})

// ---------------------------------------------------------------------------------------------------------------
// TCP super-packets coalesced by the receiving host's own GRO before the raw socket got them: the IP length covers
// the whole, the TCP checksum field holds only the pseudo-header sum (tcp4_gro_complete / tcp6_gro_complete), built
// here by the reference as tcpPacket({ checksum: "partial" }), the originals by expectedSegments

/** A kernel-GRO super-packet of `count` segments of `mss` bytes of `s`, and the segments it was made of. */
const groSuper = (s: TcpSpec, mss: number, count: number, lastFlags = ACK | PSH) => {
  const spec: TcpSpec = { ...s, flags: lastFlags, payload: patternedFrom(mss * count, s.seq ?? 1000) }
  return { packet: tcpPacket({ ...spec, checksum: "partial" }), segments: expectedSegments(spec, mss) }
}

const mtuFor = (s: TcpSpec, mss: number) => headerLengthOf(s) + mss

describe("Gro.superPacketL4", () => {
  it("finds the TCP header of a kernel-GRO super-packet, IPv4 (with and without options) and IPv6", () => {
    for (const s of [flow, flow6, { ...flow, ipOptions: new Uint8Array([1, 1, 1, 0]) }]) {
      const { packet, segments } = groSuper(s, 1000, 4)
      expect(Gro.superPacketL4(packet)).toBe(headerLengthOf(s) - 20 - s.options!.length)
      // its segments, each with a complete checksum, are not super-packets
      for (const seg of segments) expect(Gro.superPacketL4(seg)).toBe(-1)
    }
  })

  it("is -1 for a wrong checksum, UDP, a fragment, a length that disagrees, or a cut-off header", () => {
    const { packet } = groSuper(flow, 1000, 3)
    expect(Gro.superPacketL4(tcpPacket({ ...flow, payload: patternedFrom(3000, 0), checksum: "bad" }))).toBe(-1)
    const corrupt = packet.slice()
    corrupt[20 + 17] ^= 0x40
    expect(Gro.superPacketL4(corrupt)).toBe(-1)
    expect(Gro.superPacketL4(packet.subarray(0, packet.length - 1))).toBe(-1)
    expect(Gro.superPacketL4(packet.subarray(0, 30))).toBe(-1)
    const fragment = packet.slice()
    fragment[6] = 0x20 // MF
    expect(Gro.superPacketL4(fixV4Checksum(fragment))).toBe(-1)
    expect(Gro.superPacketL4(udpPacket({ payload: new Uint8Array(100) }))).toBe(-1)
    expect(Gro.superPacketL4(new Uint8Array(0))).toBe(-1)
  })
})

describe("Gro.splitSuperPackets (TUN device without offloads)", () => {
  it("cuts a kernel-GRO super-packet back into the segments it was made of, byte for byte, IPv4 and IPv6", () => {
    for (const s of [flow, flow6]) {
      const { packet, segments } = groSuper(s, 1000, 5)
      const before = segment(0, 700, { v6: s.v6 === true, seq: 1 })
      const after = segment(1, 700, { v6: s.v6 === true, seq: 1 + 700 })
      const out: Array<Uint8Array> = []
      expect(Gro.splitSuperPackets([before, packet, after], out, Arena.make(1 << 16), mtuFor(s, 1000))).toBe(1)
      // original IPv4 IDs, sequence numbers, PSH on the last only, complete checksums
      expectSamePackets(out, [before, ...segments, after], same)
      for (const seg of out.slice(1, -1)) expect(tcpChecksumValid(seg, headerLengthOf(s) - 32)).toBe(true)
    }
  })

  it("cuts to the MTU when the original segments were smaller, and completes a lone short one in place", () => {
    const { packet } = groSuper(flow, 600, 4) // 2400 bytes of payload
    const out: Array<Uint8Array> = []
    expect(Gro.splitSuperPackets([packet], out, Arena.make(1 << 16), mtuFor(flow, 1000))).toBe(1)
    expectSamePackets(out, expectedSegments({ ...flow, flags: ACK | PSH, payload: patternedFrom(2400, flow.seq!) }, 1000), same)

    const small = groSuper(flow6, 300, 2)
    const one: Array<Uint8Array> = []
    expect(Gro.splitSuperPackets([small.packet], one, Arena.make(1 << 16), 1480)).toBe(1)
    expect(one).toHaveLength(1)
    expect(tcpChecksumValid(one[0]!, 40)).toBe(true)
    expect(one[0]!.subarray(72)).toEqual(small.packet.subarray(72))
  })

  it("leaves a batch without super-packets to the caller: 0 and nothing appended", () => {
    const out: Array<Uint8Array> = []
    const plain = burst(flow, 1000, 5000)
    expect(Gro.splitSuperPackets([...plain, tcpPacket({ ...flow, checksum: "bad" })], out, Arena.make(1 << 16), 1480))
      .toBe(0)
    expect(out).toEqual([])
  })
})

describe("Gro.splitSuperPackets on damaged input: properties", () => {
  const arbInput = fc.record({
    supers: fc.array(
      fc.record({ s: arbFlow, mss: fc.integer({ min: 1, max: 1400 }), count: fc.integer({ min: 1, max: 6 }) }),
      { maxLength: 3 }
    ),
    plain: fc.array(fc.record({ s: arbFlow, length: fc.integer({ min: 1, max: 1400 }) }), { maxLength: 3 }),
    pokes: arbPokes,
    junk: arbJunk(120),
    mtu: fc.integer({ min: 1280, max: 9000 })
  }).map(({ junk, mtu, plain, pokes, supers }) => {
    const packets = [
      ...supers.map(({ count, mss, s }) => groSuper(s, mss, count).packet),
      ...plain.map(({ length, s }) => tcpPacket({ ...s, flags: ACK, payload: patternedFrom(length, s.seq) }))
    ]
    return { packets: damaged(packets, pokes, junk), mtu }
  })

  it.prop(
    "never throws nor reads outside the packets; what it cuts fits the MTU with complete checksums; the rest passes " +
      "unchanged and in order",
    { input: arbInput },
    ({ input: { mtu, packets } }) => {
      const originals = packets.map((p) => p.slice())
      const supers = originals.filter((p) => Gro.superPacketL4(p) >= 0).length
      const input = packets.map(guarded)
      const out: Array<Uint8Array> = []
      const cut = Gro.splitSuperPackets(input, out, Arena.make(1 << 14), mtu)
      expect(cut).toBe(supers)
      if (cut === 0) {
        expect(out).toEqual([])
        return
      }
      const passed: Array<number> = []
      for (const o of out) {
        const i = input.indexOf(o)
        if (i >= 0 && Gro.superPacketL4(originals[i]!) < 0) {
          // passed through: the very packet, its bytes untouched
          passed.push(i)
          expect(Buffer.from(o.buffer, o.byteOffset, o.length).equals(originals[i]!)).toBe(true)
          continue
        }
        const l4 = o[0]! >>> 4 === 6 ? 40 : (o[0]! & 0x0f) * 4
        expect(o.length).toBeLessThanOrEqual(mtu)
        expect(tcpChecksumValid(o, l4)).toBe(true)
        expect(Gro.superPacketL4(o)).toBe(-1)
      }
      expect(passed).toEqual(originals.flatMap((p, i) => (Gro.superPacketL4(p) < 0 ? [i] : [])))
    },
    { fastCheck: { numRuns: 5000 }, timeout: 120_000 }
  )
})

describe("Gro.coalesce with a kernel-GRO super-packet (TUN device with offloads)", () => {
  const header = (frame: Uint8Array) => VirtioNet.read(frame, 0, VirtioNet.makeHeader())

  it("writes it with NEEDS_CSUM and GSO at the MTU's segment size, which the kernel's segmentation undoes exactly", () => {
    for (const s of [flow, flow6]) {
      const { packet, segments } = groSuper(s, 1000, 6)
      const out: Array<Uint8Array> = []
      Gro.coalesce([packet], out, Arena.make(1 << 17), 0, { udp: false, mtu: mtuFor(s, 1000) })
      expect(out).toHaveLength(1)
      const h = header(out[0]!)
      expect(h).toEqual({
        flags: VirtioNet.Flag.NeedsCsum,
        gsoType: s.v6 === true ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4,
        hdrLen: headerLengthOf(s),
        gsoSize: 1000,
        csumStart: headerLengthOf(s) - 32,
        csumOffset: 16,
        numBuffers: 0
      })
      expect(out[0]!.subarray(12)).toEqual(packet)
      const again: Array<Uint8Array> = []
      Gso.segment(out[0]!.subarray(12), h, again, Arena.make(1 << 17))
      expectSamePackets(again, segments, same)
    }
  })

  it("among other packets, in order; a short one gets NEEDS_CSUM without GSO; CWR sets the ECN bit", () => {
    const mtu = mtuFor(flow, 1000)
    const big = groSuper(flow, 1000, 3)
    const short = groSuper({ ...flow, sport: 1234 }, 200, 2)
    const cwr = groSuper({ ...flow, sport: 999 }, 1000, 2, ACK | CWR)
    const other = tcpPacket({ ...flow, sport: 4321, payload: patternedFrom(500, 0) })
    const out: Array<Uint8Array> = []
    Gro.coalesce([other, big.packet, short.packet, cwr.packet], out, Arena.make(1 << 17), 0, { udp: false, mtu })
    expect(out.map((f) => f.subarray(12))).toEqual([other, big.packet, short.packet, cwr.packet])
    expect(header(out[0]!)).toEqual(VirtioNet.makeHeader())
    expect(header(out[1]!).gsoType).toBe(VirtioNet.GsoType.TcpV4)
    const h = header(out[2]!)
    expect([h.flags, h.gsoType, h.gsoSize, h.csumStart, h.csumOffset]).toEqual([VirtioNet.Flag.NeedsCsum, 0, 0, 20, 16])
    // the kernel completes the checksum of the short one: then it is right
    const completed = out[2]!.slice(12)
    expect(VirtioNet.finishChecksum(completed, h)).toBe(true)
    expect(tcpChecksumValid(completed, 20)).toBe(true)
    expect(header(out[3]!).gsoType).toBe(VirtioNet.GsoType.TcpV4 | VirtioNet.GsoType.Ecn)
  })

  it("does not merge it with the segments around it", () => {
    const mtu = mtuFor(flow, 1000)
    const segs = burst(flow, 1000, 3000)
    const { packet } = groSuper({ ...flow, seq: (flow.seq! + 3000) >>> 0, id: flow.id! + 3 }, 1000, 2)
    const out: Array<Uint8Array> = []
    Gro.coalesce([...segs, packet], out, Arena.make(1 << 17), 0, { udp: false, mtu })
    expect(out).toHaveLength(2)
    expect(out[1]!.subarray(12)).toEqual(packet)
    expect(header(out[1]!).flags).toBe(VirtioNet.Flag.NeedsCsum)
  })
})

// ---------------------------------------------------------------------------------------------------------------
// UDP: datagrams merged into UDP_L4 super-packets (options.udp)

const UDP: Gro.CoalesceOptions = { udp: true }

const runUdp = (packets: ReadonlyArray<Uint8Array>, headroom = 0, arenaSize = 1 << 20) => {
  const out: Array<Uint8Array> = []
  const merged = Gro.coalesce(packets, out, Arena.make(arenaSize), headroom, UDP)
  return { out, merged }
}

const uflow: UdpSpec = { id: 0x0500, sport: 40404, dport: 5353 }
const uflow6: UdpSpec = { ...uflow, v6: true, flow: 0x13579 }

/** The super-packet expected for datagrams first..first+count-1 of `udpBurst(s, size, total, seed)`. */
const udpMerged = (s: UdpSpec, size: number, total: number, first: number, count: number, seed = 0) =>
  udpSuperFrame({
    ...s,
    id: ((s.id ?? 0x3a00) + first) & 0xffff,
    payload: patternedFrom(total, seed).subarray(first * size, Math.min(total, (first + count) * size))
  }, size)

/** Datagram `i` of a burst of `s` with `size`-byte payloads, with some fields overridden. */
const datagram = (s: UdpSpec, i: number, size: number, over: UdpSpec = {}) =>
  udpPacket({ ...s, id: ((s.id ?? 0x3a00) + i) & 0xffff, payload: patternedFrom(size, i * size), ...over })

// One's complement 16-bit arithmetic as include/net/checksum.h has it, for the model of the kernel below.
const csum16Add = (a: number, b: number) => {
  const r = a + b
  return (r & 0xffff) + (r >>> 16)
}
const csum16Sub = (a: number, b: number) => csum16Add(a, ~b & 0xffff)
const sum16 = (b: Uint8Array) => {
  let s = 0
  for (let i = 0; i < b.length; i += 2) s += (b[i]! << 8) + (i + 1 < b.length ? b[i + 1]! : 0)
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
  return s
}

/**
 * What the kernel makes of a UDP_L4 frame, modelled on __udp_gso_segment and inet_gso_segment/ipv6_gso_segment
 * rather than on our Gso: each datagram's checksum starts from the super-packet's uh->check with uh->len taken out of
 * it and the datagram's UDP length put in, and is completed over the UDP header and payload (0 sent as 0xffff).
 */
const kernelSegments = (frame: Uint8Array): Array<Uint8Array> => {
  const dv = new DataView(frame.buffer, frame.byteOffset)
  const l4 = dv.getUint16(6, true)
  const size = dv.getUint16(4, true)
  const ip = frame.subarray(12)
  const v6 = ip[0]! >>> 4 === 6
  const check = (ip[l4 + 6]! << 8) | ip[l4 + 7]!
  const len = (ip[l4 + 4]! << 8) | ip[l4 + 5]!
  const hl = l4 + 8
  const segs: Array<Uint8Array> = []
  for (let k = 0, from = hl; from < ip.length; k++, from += size) {
    const n = Math.min(size, ip.length - from)
    const seg = new Uint8Array(hl + n)
    seg.set(ip.subarray(0, hl))
    seg.set(ip.subarray(from, from + n), hl)
    const sdv = new DataView(seg.buffer)
    if (v6) {
      sdv.setUint16(4, seg.length - 40)
    } else {
      sdv.setUint16(2, seg.length)
      sdv.setUint16(4, (sdv.getUint16(4) + k) & 0xffff)
      sdv.setUint16(10, 0)
      sdv.setUint16(10, ~sum16(seg.subarray(0, 20)) & 0xffff)
    }
    sdv.setUint16(l4 + 4, 8 + n)
    sdv.setUint16(l4 + 6, csum16Add(csum16Sub(check, len), 8 + n))
    sdv.setUint16(l4 + 6, ~sum16(seg.subarray(l4)) & 0xffff || 0xffff)
    segs.push(seg)
  }
  return segs
}

describe("Gro.coalesce, UDP", () => {
  it("merges twenty 64-byte IPv4 datagrams into one UDP_L4 super-packet", () => {
    const dgrams = udpBurst(uflow, 64, 20 * 64)
    const { merged: n, out } = runUdp(dgrams)
    expect(n).toBe(20)
    expectSamePackets(out, [udpMerged(uflow, 64, 20 * 64, 0, 20)], same)
    const h = VirtioNet.read(out[0]!, 0, VirtioNet.makeHeader())
    expect(h).toEqual({
      flags: VirtioNet.Flag.NeedsCsum,
      gsoType: VirtioNet.GsoType.UdpL4,
      hdrLen: 28,
      gsoSize: 64,
      csumStart: 20,
      csumOffset: 6,
      numBuffers: 0
    })
    const ip = out[0]!.subarray(12)
    // IPv4 total length and header checksum, UDP length of the whole super-packet.
    expect((ip[2]! << 8) | ip[3]!).toBe(28 + 20 * 64)
    expect(sum16(ip.subarray(0, 20))).toBe(0xffff)
    expect((ip[24]! << 8) | ip[25]!).toBe(8 + 20 * 64)
    // Completed from csum_start, the checksum is the one of the whole super-packet as a datagram.
    const whole = ip.slice()
    expect(VirtioNet.finishChecksum(whole, h)).toBe(true)
    expect(udpChecksumValid(whole, 20)).toBe(true)
  })

  it("writes super-packets the kernel's own segmentation turns back into the original datagrams", () => {
    for (const s of [uflow, uflow6]) {
      for (const [size, total] of [[64, 64 * 20], [333, 5 * 333 + 77], [1, 9], [1472, 2 * 1472 + 1]]) {
        const dgrams = udpBurst(s, size!, total!, 7)
        const { out } = runUdp(dgrams)
        expect(out.length).toBe(1)
        expectSamePackets(kernelSegments(out[0]!), dgrams, same)
      }
    }
  })

  it("merges IPv6 datagrams with an odd size and a short last one", () => {
    const dgrams = udpBurst(uflow6, 333, 5 * 333 + 77)
    const { out } = runUdp(dgrams)
    expectSamePackets(out, [udpMerged(uflow6, 333, 5 * 333 + 77, 0, 6)], same)
    const h = VirtioNet.read(out[0]!, 0, VirtioNet.makeHeader())
    expect([h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset]).toEqual([5, 48, 333, 40, 6])
    expect(out[0]!.length).toBe(12 + 48 + 5 * 333 + 77)
  })

  it("ends a group after a shorter datagram, and starts a new one at a longer one", () => {
    const next = { ...uflow, id: 0x503 }
    const dgrams = [...udpBurst(uflow, 100, 250), ...udpBurst(next, 100, 200, 250)]
    expectSamePackets(
      runUdp(dgrams).out,
      [udpMerged(uflow, 100, 250, 0, 3), udpMerged(next, 100, 200, 0, 2, 250)],
      same
    )
    const grow = [datagram(uflow, 0, 64), datagram(uflow, 1, 64), datagram(uflow, 2, 100), datagram(uflow, 3, 100)]
    const { out } = runUdp(grow)
    expect(out.length).toBe(2)
    expectSamePackets(out.flatMap(kernelSegments), grow, same)
    expect(out.map((f) => VirtioNet.gsoSize(f))).toEqual([64, 100])
  })

  it("passes a datagram with a bad checksum through alone and unchanged, and merges around it", () => {
    const dgrams = udpBurst(uflow, 64, 6 * 64)
    dgrams[2] = datagram(uflow, 2, 64, { payload: patternedFrom(6 * 64, 0).subarray(128, 192), checksum: "bad" })
    const { merged: n, out } = runUdp(dgrams)
    expect(n).toBe(5)
    expectSamePackets(
      out,
      [udpMerged(uflow, 64, 6 * 64, 0, 2), plainFrame(dgrams[2]!), udpMerged(uflow, 64, 6 * 64, 3, 3)],
      same
    )
    // A corrupt first datagram goes alone; the next one starts the group.
    const first = udpBurst(uflow, 64, 4 * 64)
    first[0] = udpPacket({ ...uflow, payload: patternedFrom(64, 0), checksum: "bad" })
    expectSamePackets(runUdp(first).out, [plainFrame(first[0]!), udpMerged(uflow, 64, 4 * 64, 1, 3)], same)
  })

  it("needs IPv4 IDs incrementing by one: a gap splits, a fixed ID (even with DF) never merges", () => {
    const gap = [0, 1, 7, 8].map((k, i) => datagram(uflow, i, 64, { id: 0x500 + k }))
    const { out } = runUdp(gap)
    expect(out.length).toBe(2)
    expect(out.map((f) => VirtioNet.gsoType(f))).toEqual([5, 5])
    expectSamePackets(out.flatMap(kernelSegments), gap, same)
    const fixed = [0, 1, 2].map((i) => datagram(uflow, i, 64, { id: 0x500, df: true }))
    expectSamePackets(runUdp(fixed).out, fixed.map(plainFrame), same)
    const wrap = { ...uflow, id: 0xfffe }
    expectSamePackets(runUdp(udpBurst(wrap, 64, 4 * 64)).out, [udpMerged(wrap, 64, 4 * 64, 0, 4)], same)
  })

  it("puts at most 64 datagrams in a group (UDP_GRO_CNT_MAX): the 65th starts a new one", () => {
    const seventy = udpBurst(uflow, 16, 70 * 16)
    const { merged: n, out } = runUdp(seventy)
    expect(n).toBe(70)
    expectSamePackets(out, [udpMerged(uflow, 16, 70 * 16, 0, 64), udpMerged(uflow, 16, 70 * 16, 64, 6)], same)
    const sixtyFive = udpBurst(uflow, 16, 65 * 16)
    expectSamePackets(
      runUdp(sixtyFive).out,
      [udpMerged(uflow, 16, 65 * 16, 0, 64), plainFrame(sixtyFive[64]!)],
      same
    )
  })

  it("keeps every super-packet within 65535 bytes", () => {
    const dgrams = udpBurst(uflow, 1400, 47 * 1400)
    const { out } = runUdp(dgrams)
    expectSamePackets(out, [udpMerged(uflow, 1400, 47 * 1400, 0, 46), plainFrame(dgrams[46]!)], same)
    expect(out[0]!.length - 12).toBe(28 + 46 * 1400)
  })

  it("never merges a datagram without a checksum (IPv4 checksum 0), and passes it through unchanged", () => {
    const dgrams = udpBurst(uflow, 64, 5 * 64)
    dgrams[2] = datagram(uflow, 2, 64, { payload: patternedFrom(5 * 64, 0).subarray(128, 192), checksum: "none" })
    expectSamePackets(
      runUdp(dgrams).out,
      [udpMerged(uflow, 64, 5 * 64, 0, 2), plainFrame(dgrams[2]!), udpMerged(uflow, 64, 5 * 64, 3, 2)],
      same
    )
    // Not even when 0 happens to be right: the sum of the datagram is 0xffff, so its checksum is computed as 0 and sent
    // as 0xffff; sent as 0 it means "no checksum" (IPv4) or is invalid (IPv6), and segmenting would change it.
    for (const s of [uflow, uflow6]) {
      const l4 = udpL4Of(s)
      const zeroSum = (i: number, checksum: "full" | "none") => {
        const payload = patternedFrom(64, i * 64)
        payload[62] = 0
        payload[63] = 0
        const probe = datagram(s, i, 64, { payload })
        payload[62] = probe[l4 + 6]!
        payload[63] = probe[l4 + 7]!
        return datagram(s, i, 64, { payload, checksum })
      }
      const sent = [0, 1, 2].map((i) => zeroSum(i, "full"))
      expect(sent.map((p) => (p[l4 + 6]! << 8) | p[l4 + 7]!)).toEqual([0xffff, 0xffff, 0xffff])
      expect(runUdp(sent).out.length).toBe(1)
      const zero = [0, 1, 2].map((i) => zeroSum(i, "none"))
      expectSamePackets(runUdp(zero).out, zero.map(plainFrame), same)
    }
    for (const s of [uflow, uflow6]) {
      const none = [0, 1, 2].map((i) => datagram(s, i, 64, { checksum: "none" }))
      const { merged: n, out } = runUdp(none)
      expect(n).toBe(0)
      expectSamePackets(out, none.map(plainFrame), same)
    }
  })

  it("merges only consecutive runs of a flow: interleaved flows stay apart", () => {
    const b = { ...uflow, sport: 40405, id: 0x900 }
    const a0 = datagram(uflow, 0, 64)
    const a1 = datagram(uflow, 1, 64)
    const b0 = datagram(b, 0, 64)
    const b1 = datagram(b, 1, 64)
    expectSamePackets(runUdp([a0, b0, a1, b1]).out, [a0, b0, a1, b1].map(plainFrame), same)
    const runs = [a0, a1, datagram(uflow, 2, 64), b0, b1]
    const { out } = runUdp(runs)
    expect(out.length).toBe(2)
    expectSamePackets(out.flatMap(kernelSegments), runs, same)
  })

  it("splits where a field that must match differs", () => {
    const changes: ReadonlyArray<UdpSpec> = [
      { tos: 3 },
      { ttl: 63 },
      { df: false },
      { src: "192.0.2.11" },
      { dst: "198.51.100.21" },
      { sport: 1 },
      { dport: 53 }
    ]
    for (const change of changes) {
      const dgrams = udpBurst(uflow, 64, 3 * 64)
      dgrams[2] = datagram(uflow, 2, 64, { payload: patternedFrom(3 * 64, 0).subarray(128), ...change })
      expectSamePackets(runUdp(dgrams).out, [udpMerged(uflow, 64, 3 * 64, 0, 2), plainFrame(dgrams[2]!)], same)
    }
    for (const change of [{ tos: 1 }, { flow: 0x54321 }, { ttl: 1 }, { src: "2001:db8:1::11" }] as const) {
      const dgrams = udpBurst(uflow6, 64, 3 * 64)
      dgrams[2] = datagram(uflow6, 2, 64, { payload: patternedFrom(3 * 64, 0).subarray(128), ...change })
      expectSamePackets(runUdp(dgrams).out, [udpMerged(uflow6, 64, 3 * 64, 0, 2), plainFrame(dgrams[2]!)], same)
    }
  })

  it("does not merge IPv4 options, extension headers, fragments, a wrong UDP length, empty datagrams", () => {
    const cases: ReadonlyArray<ReadonlyArray<Uint8Array>> = [
      udpBurst({ ...uflow, ipOptions: new Uint8Array([1, 1, 1, 0]) }, 64, 128),
      udpBurst({ ...uflow6, hopByHop: true }, 64, 128),
      [0, 1].map((i) => datagram(uflow, i, 64, { udpLength: 8 + 60 })),
      [0, 1].map((i) => datagram(uflow, i, 0)),
      [0, 1].map((i) => datagram(uflow6, i, 0)),
      udpBurst(uflow, 64, 128).map((p) => {
        const q = p.slice()
        q[6]! |= 0x20 // MF
        return fixV4Checksum(q)
      })
    ]
    for (const dgrams of cases) expectSamePackets(runUdp(dgrams).out, dgrams.map(plainFrame), same)
  })

  it("merges no UDP unless asked to", () => {
    const dgrams = udpBurst(uflow, 64, 10 * 64)
    const { merged: n, out } = run(dgrams)
    expect(n).toBe(0)
    expectSamePackets(out, dgrams.map(plainFrame), same)
  })

  it("merges TCP and UDP runs of one batch, each with its own header", () => {
    const tcp = burst(flow, 500, 1500)
    const udp = udpBurst(uflow6, 64, 3 * 64)
    const more = burst({ ...flow, seq: flow.seq! + 1500, id: 0x103 }, 500, 1000)
    const { merged: n, out } = runUdp([...tcp, ...udp, ...more])
    expect(n).toBe(8)
    expect(out.map((f) => VirtioNet.gsoType(f))).toEqual([1, 5, 1])
    expectSamePackets(out.slice(0, 2), [merged(flow, 500, 1500, 0, 3), udpMerged(uflow6, 64, 3 * 64, 0, 3)], same)
  })

  it("builds UDP super-packets in buffers of their own when the arena is full", () => {
    const dgrams = udpBurst(uflow, 64, 20 * 64)
    expectSamePackets(runUdp(dgrams, 0, 100).out, [udpMerged(uflow, 64, 20 * 64, 0, 20)], same)
  })
})

/** UDP datagram mutations for the batch properties. */
type UdpEdit = "none" | "bad-checksum" | "no-checksum" | "drop" | "swap" | "id-gap" | "tcp" | "longer"

const arbUdpBatchOf = (maxCount: number, maxSize: number) => fc.record({
  flows: fc.array(arbUdpFlow, { minLength: 1, maxLength: 3 }),
  size: fc.integer({ min: 1, max: maxSize }),
  bursts: fc.array(
    fc.record({
      // Mostly short bursts; now and then one long enough to reach the 64-datagram limit.
      count: fc.oneof(
        { arbitrary: fc.integer({ min: 1, max: 12 }), weight: 6 },
        { arbitrary: fc.integer({ min: 1, max: maxCount }), weight: 1 }
      ),
      short: fc.nat()
    }),
    { minLength: 1, maxLength: 4 }
  ),
  edits: fc.array(
    fc.record({
      at: fc.nat(),
      edit: fc.constantFrom<UdpEdit>("none", "bad-checksum", "no-checksum", "drop", "swap", "id-gap", "tcp", "longer")
    }),
    { maxLength: 4 }
  )
})

type UdpBatch = typeof arbUdpBatchOf extends (...args: never) => fc.Arbitrary<infer T> ? T : never

/** Bursts of one to three UDP flows in a row (each burst's last datagram maybe shorter), then a few edits. */
const makeUdpBatch = ({ bursts, edits, flows, size }: UdpBatch) => {
  const packets: Array<Uint8Array> = []
  bursts.forEach(({ count, short }, i) => {
    const f = flows[i % flows.length]!
    const total = count * size - (short % size)
    packets.push(...udpBurst({ ...f, id: (f.id + i * 1000) & 0xffff }, size, total, i * 7919))
  })
  for (const { at, edit } of edits) {
    if (packets.length === 0) break
    const i = at % packets.length
    const p = packets[i]!
    const l4 = p[0]! >>> 4 === 6 ? 40 : 20
    if (edit === "bad-checksum") p[l4 + 6] ^= 0x10
    else if (edit === "no-checksum") {
      if (l4 === 20) {
        p[26] = 0
        p[27] = 0
      }
    } else if (edit === "drop") packets.splice(i, 1)
    else if (edit === "swap" && i + 1 < packets.length) packets.splice(i, 2, packets[i + 1]!, p)
    else if (edit === "id-gap" && l4 === 20) {
      p[4] = (p[4]! + 1) & 0xff
      fixV4Checksum(p)
    } else if (edit === "tcp") packets.splice(i, 0, tcpPacket({ payload: patternedFrom(20, i) }))
    else if (edit === "longer") {
      const f = flows[0]!
      packets.splice(i, 0, udpPacket({ ...f, id: (f.id + i) & 0xffff, payload: patternedFrom(size + 1, i) }))
    }
  }
  return packets
}

/** The groups a clean burst must be cut into: 64 datagrams at most, 65535 bytes at most. */
const expectedGroups = (count: number, size: number, headerLength: number): Array<number> => {
  const groups: Array<number> = []
  let left = count
  const perGroup = Math.min(64, Math.floor((0xffff - headerLength) / size))
  while (left > 0) {
    groups.push(Math.min(perGroup, left))
    left -= perGroup
  }
  return groups
}

describe("Gro properties, UDP", () => {
  it.prop(
    "segment(coalesce(x)) is x byte for byte; super-packets are what the kernel takes",
    { batch: arbUdpBatchOf(80, 120) },
    ({ batch }) => {
      const packets = makeUdpBatch(batch)
      const originals = packets.map((p) => p.slice())
      const { out } = runUdp(packets.map((p) => withHeadroom(p)), 20)
      const again: Array<Uint8Array> = []
      const arena = Arena.make(1 << 17)
      const hdr = VirtioNet.makeHeader()
      for (const frame of out) {
        VirtioNet.read(frame, 0, hdr)
        if (hdr.gsoType === VirtioNet.GsoType.UdpL4) {
          const l4 = hdr.csumStart
          expect([hdr.flags, hdr.csumOffset, hdr.hdrLen]).toEqual([1, 6, l4 + 8])
          const payload = frame.length - 12 - hdr.hdrLen
          expect(payload).toBeGreaterThan(hdr.gsoSize)
          expect(Math.ceil(payload / hdr.gsoSize)).toBeLessThanOrEqual(64)
          expect(frame.length - 12).toBeLessThanOrEqual(0xffff)
          const whole = frame.slice(12)
          VirtioNet.finishChecksum(whole, hdr)
          expect(udpChecksumValid(whole, l4)).toBe(true)
          expectSamePackets(kernelSegments(frame), expectedUdpSegmentsOf(frame), same)
        }
        expect(Gso.segment(frame.slice(12), hdr, again, arena)).toBeGreaterThan(0)
      }
      expectSamePackets(again, originals, same)
      if (batch.edits.length === 0 && batch.flows.length === 1 && batch.bursts.length === 1) {
        // A clean burst: merged as far as the limits allow.
        const f = batch.flows[0]!
        const { count, short } = batch.bursts[0]!
        const total = count * batch.size - (short % batch.size)
        const groups = expectedGroups(count, batch.size, udpL4Of(f) + 8)
        let first = 0
        const expected = groups.map((n) => {
          const frame = n === 1
            ? plainFrame(originals[first]!)
            : udpMerged(f, batch.size, total, first, n)
          first += n
          return frame
        })
        expectSamePackets(out, expected, same)
      }
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 180_000 }
  )

  /** Valid UDP bursts with random bytes changed, packets cut short, and random byte strings put in between. */
  const arbUdpNoise = fc.record({
    // Small: every byte read goes through the guard.
    batch: arbUdpBatchOf(16, 24),
    pokes: arbPokes,
    junk: arbJunk(80)
  }).map(({ batch, junk, pokes }) => {
    return damaged(makeUdpBatch(batch), pokes, junk)
  })

  it.prop(
    "never throws nor reads outside the packets, and writes only headers the kernel accepts",
    { packets: arbUdpNoise, headroom: fc.constantFrom(0, 20) },
    ({ headroom, packets }) => {
      const input = packets.map((p) => guarded(headroom === 0 ? p : withHeadroom(p)))
      const originals = packets.map((p) => p.slice())
      const { out } = runUdp(input, headroom)
      expect(out.length).toBeLessThanOrEqual(input.length)
      const hdr = VirtioNet.makeHeader()
      for (const o of out) {
        VirtioNet.read(o, 0, hdr)
        if (hdr.flags === 0) {
          expect(hdr).toEqual(VirtioNet.makeHeader())
        } else if (hdr.gsoType !== VirtioNet.GsoType.UdpL4) {
          expectKernelTakes(o, hdr)
        } else {
          const v6 = o[12]! >>> 4 === 6
          expect([hdr.flags, hdr.csumStart, hdr.csumOffset, hdr.hdrLen]).toEqual([1, v6 ? 40 : 20, 6, v6 ? 48 : 28])
          expect(o.length - 12 - hdr.hdrLen).toBeGreaterThan(hdr.gsoSize)
          expect(o.length - 12).toBeLessThanOrEqual(0xffff)
        }
      }
      // The packets' own bytes are never written.
      expect(input.every((p, i) => Buffer.from(p.slice()).equals(originals[i]!))).toBe(true)
    },
    { fastCheck: { numRuns: 10_000 }, timeout: 120_000 }
  )
})

/** The reference datagrams a UDP_L4 frame stands for, rebuilt from its first datagram's fields. */
const expectedUdpSegmentsOf = (frame: Uint8Array): Array<Uint8Array> => {
  const ip = frame.subarray(12)
  const dv = new DataView(ip.buffer, ip.byteOffset)
  const v6 = ip[0]! >>> 4 === 6
  const l4 = v6 ? 40 : 20
  const spec: UdpSpec = v6
    ? {
      v6,
      tos: (dv.getUint32(0) >>> 20) & 0xff,
      flow: dv.getUint32(0) & 0xfffff,
      ttl: ip[7]!,
      src: Buffer.from(ip.subarray(8, 24)).toString("hex").replace(/(.{4})(?!$)/g, "$1:"),
      dst: Buffer.from(ip.subarray(24, 40)).toString("hex").replace(/(.{4})(?!$)/g, "$1:")
    }
    : {
      tos: ip[1]!,
      id: dv.getUint16(4),
      df: (ip[6]! & 0x40) !== 0,
      ttl: ip[8]!,
      src: Array.from(ip.subarray(12, 16)).join("."),
      dst: Array.from(ip.subarray(16, 20)).join(".")
    }
  return expectedUdpSegments({
    ...spec,
    sport: dv.getUint16(l4),
    dport: dv.getUint16(l4 + 2),
    payload: ip.subarray(l4 + 8)
  }, VirtioNet.gsoSize(frame))
}
