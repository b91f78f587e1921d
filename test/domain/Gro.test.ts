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
  URG
} from "./offloadRef.js"

const same = (a: unknown, b: unknown) => expect(a).toEqual(b)

const run = (packets: ReadonlyArray<Uint8Array>, headroom = 0, arenaSize = 1 << 20) => {
  const out: Array<Uint8Array> = []
  const merged = Gro.coalesce(packets, out, Arena.make(arenaSize), headroom)
  return { out, merged }
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
    pokes: fc.array(fc.record({ at: fc.nat(), offset: fc.nat(), value: fc.nat(255), cut: fc.boolean() }), {
      maxLength: 4
    }),
    junk: fc.array(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ maxLength: 120 }) }), { maxLength: 3 })
  }).map(({ batch, junk, pokes }) => {
    const packets = makeBatch(batch)
    for (const { at, cut, offset, value } of pokes) {
      if (packets.length === 0) break
      const i = at % packets.length
      const p = packets[i]!
      if (cut) packets[i] = p.slice(0, offset % (p.length + 1))
      else p[offset % p.length] = value
    }
    for (const { at, bytes } of junk) packets.splice(at % (packets.length + 1), 0, bytes)
    return packets
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
        if (hdr.gsoType === 0) {
          expect(hdr).toEqual(VirtioNet.makeHeader())
        } else {
          const v6 = o[12]! >>> 4 === 6
          expect(hdr.gsoType).toBe(v6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4)
          expect([hdr.flags, hdr.csumStart, hdr.csumOffset]).toEqual([1, v6 ? 40 : 20, 16])
          expect(hdr.gsoSize).toBeGreaterThan(0)
          expect(o.length - 12 - hdr.hdrLen).toBeGreaterThan(hdr.gsoSize)
          expect(o.length - 12).toBeLessThanOrEqual(0xffff)
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
