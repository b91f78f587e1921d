/**
 * Reference TCP packets for the offload tests, built from the RFC layouts with DataView and the plain reference
 * checksum (independent of src/domain): single segments, kernel-style super-packets with a partial checksum, the
 * segments a super-packet must be cut into, and virtio_net_hdr bytes.
 */
import { FastCheck as fc } from "effect"
import { ip4, ip6, refChecksum, refSum } from "./helpers.js"

export const FIN = 0x01
export const SYN = 0x02
export const RST = 0x04
export const PSH = 0x08
export const ACK = 0x10
export const URG = 0x20
export const ECE = 0x40
export const CWR = 0x80

export interface TcpSpec {
  readonly v6?: boolean
  readonly src?: string
  readonly dst?: string
  /** IPv4 TOS or IPv6 traffic class. */
  readonly tos?: number
  readonly flow?: number
  /** TTL or hop limit. */
  readonly ttl?: number
  readonly id?: number
  readonly df?: boolean
  /** IPv4 option bytes (a multiple of 4). */
  readonly ipOptions?: Uint8Array
  /** An IPv6 extension header (hop-by-hop, 8 bytes of options padding) before TCP. */
  readonly hopByHop?: boolean
  readonly sport?: number
  readonly dport?: number
  readonly seq?: number
  readonly ack?: number
  readonly flags?: number
  readonly window?: number
  /** TCP option bytes (a multiple of 4). */
  readonly options?: Uint8Array
  readonly payload?: Uint8Array
  /** "full" (default), "partial" (the pseudo-header sum only, as a NEEDS_CSUM packet from the kernel), or "bad". */
  readonly checksum?: "full" | "partial" | "bad"
}

/** NOP, NOP, timestamps (RFC 7323 3): 12 bytes. */
export const timestamps = (tsval: number, tsecr: number): Uint8Array => {
  const b = new Uint8Array(12)
  const dv = new DataView(b.buffer)
  b[0] = 1
  b[1] = 1
  b[2] = 8
  b[3] = 10
  dv.setUint32(4, tsval >>> 0)
  dv.setUint32(8, tsecr >>> 0)
  return b
}

/** Offset of the TCP header in a packet built from `s`. */
export const l4Of = (s: TcpSpec): number =>
  s.v6 === true ? 40 + (s.hopByHop === true ? 8 : 0) : 20 + (s.ipOptions?.length ?? 0)

/** IP + TCP header bytes of a packet built from `s`. */
export const headerLengthOf = (s: TcpSpec): number => l4Of(s) + 20 + (s.options?.length ?? 0)

export const tcpPacket = (s: TcpSpec): Uint8Array => {
  const payload = s.payload ?? new Uint8Array(0)
  const options = s.options ?? new Uint8Array(0)
  const l4 = l4Of(s)
  const thl = 20 + options.length
  const p = new Uint8Array(l4 + thl + payload.length)
  const dv = new DataView(p.buffer)
  const tcpLength = thl + payload.length
  let pseudo: number
  if (s.v6 === true) {
    dv.setUint32(0, ((6 << 28) | ((s.tos ?? 0) << 20) | (s.flow ?? 0x12345)) >>> 0)
    dv.setUint16(4, p.length - 40)
    p[6] = s.hopByHop === true ? 0 : 6
    p[7] = s.ttl ?? 64
    p.set(ip6(s.src ?? "2001:db8:1::10"), 8)
    p.set(ip6(s.dst ?? "2001:db8:2::20"), 24)
    if (s.hopByHop === true) {
      p[40] = 6
      p[41] = 0
      p[42] = 1 // PadN
      p[43] = 4
    }
    const ph = new Uint8Array(40)
    ph.set(p.subarray(8, 40), 0)
    new DataView(ph.buffer).setUint32(32, tcpLength)
    ph[39] = 6
    pseudo = refSum(ph)
  } else {
    const ipOptions = s.ipOptions ?? new Uint8Array(0)
    p[0] = 0x40 | ((20 + ipOptions.length) / 4)
    p[1] = s.tos ?? 0
    dv.setUint16(2, p.length)
    dv.setUint16(4, s.id ?? 0x1c46)
    dv.setUint16(6, s.df === false ? 0 : 0x4000)
    p[8] = s.ttl ?? 64
    p[9] = 6
    dv.setUint32(12, ip4(s.src ?? "192.0.2.10"))
    dv.setUint32(16, ip4(s.dst ?? "198.51.100.20"))
    p.set(ipOptions, 20)
    dv.setUint16(10, refChecksum(p.subarray(0, l4)))
    const ph = new Uint8Array(12)
    ph.set(p.subarray(12, 20), 0)
    ph[9] = 6
    new DataView(ph.buffer).setUint16(10, tcpLength)
    pseudo = refSum(ph)
  }
  dv.setUint16(l4, s.sport ?? 40000)
  dv.setUint16(l4 + 2, s.dport ?? 5201)
  dv.setUint32(l4 + 4, (s.seq ?? 1000) >>> 0)
  dv.setUint32(l4 + 8, (s.ack ?? 777) >>> 0)
  p[l4 + 12] = (thl / 4) << 4
  p[l4 + 13] = s.flags ?? ACK
  dv.setUint16(l4 + 14, s.window ?? 502)
  p.set(options, l4 + 20)
  p.set(payload, l4 + thl)
  const mode = s.checksum ?? "full"
  if (mode === "partial") {
    dv.setUint16(l4 + 16, pseudo)
  } else {
    const c = refChecksum(p.subarray(l4), pseudo)
    dv.setUint16(l4 + 16, mode === "bad" ? c ^ 0x0101 : c)
  }
  return p
}

/** True when the TCP checksum of a reference-layout packet is right. */
export const tcpChecksumValid = (p: Uint8Array, l4: number): boolean => {
  const tcpLength = p.length - l4
  let ph: Uint8Array
  if (p[0]! >>> 4 === 6) {
    ph = new Uint8Array(40)
    ph.set(p.subarray(8, 40))
    new DataView(ph.buffer).setUint32(32, tcpLength)
    ph[39] = 6
  } else {
    ph = new Uint8Array(12)
    ph.set(p.subarray(12, 20))
    ph[9] = 6
    new DataView(ph.buffer).setUint16(10, tcpLength)
  }
  return refSum(p.subarray(l4), refSum(ph)) === 0xffff
}

/** The segments a super-packet built from `s` must be cut into, built one by one from scratch. */
export const expectedSegments = (s: TcpSpec, mss: number): Array<Uint8Array> => {
  const payload = s.payload ?? new Uint8Array(0)
  const count = Math.max(1, Math.ceil(payload.length / mss))
  const flags = s.flags ?? ACK
  const segs: Array<Uint8Array> = []
  for (let k = 0; k < count; k++) {
    let f = flags
    if (k > 0) f &= ~CWR
    if (k < count - 1) f &= ~(FIN | PSH)
    segs.push(tcpPacket({
      ...s,
      id: ((s.id ?? 0x1c46) + k) & 0xffff,
      seq: ((s.seq ?? 1000) + k * mss) >>> 0,
      flags: f,
      payload: payload.subarray(k * mss, Math.min(payload.length, (k + 1) * mss)),
      checksum: "full"
    }))
  }
  return segs
}

/** The segments of one burst of `s` with `mss`-byte payloads (the spec as the first segment). */
export const burst = (s: TcpSpec, mss: number, total: number): Array<Uint8Array> =>
  expectedSegments({ ...s, payload: patternedFrom(total, s.seq ?? 1000) }, mss)

/** Payload bytes that depend on the stream position, so a misplaced byte shows. */
export const patternedFrom = (n: number, position: number): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = ((position + i) * 7 + ((position + i) >>> 8)) & 0xff
  return b
}

export interface VnetSpec {
  readonly flags?: number
  readonly gsoType?: number
  readonly hdrLen?: number
  readonly gsoSize?: number
  readonly csumStart?: number
  readonly csumOffset?: number
}

/** virtio_net_hdr bytes, little endian, 12 bytes. */
export const vnet = (h: VnetSpec = {}): Uint8Array => {
  const b = new Uint8Array(12)
  const dv = new DataView(b.buffer)
  b[0] = h.flags ?? 0
  b[1] = h.gsoType ?? 0
  dv.setUint16(2, h.hdrLen ?? 0, true)
  dv.setUint16(4, h.gsoSize ?? 0, true)
  dv.setUint16(6, h.csumStart ?? 0, true)
  dv.setUint16(8, h.csumOffset ?? 0, true)
  return b
}

export const concat = (...parts: ReadonlyArray<Uint8Array>): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let o = 0
  for (const p of parts) {
    out.set(p, o)
    o += p.length
  }
  return out
}

/** What the kernel would write for a TCP super-packet `s` cut at `mss`: header + packet with the partial checksum. */
export const superFrame = (s: TcpSpec, mss: number): Uint8Array =>
  concat(
    vnet({
      flags: 1,
      gsoType: s.v6 === true ? 4 : 1,
      hdrLen: headerLengthOf(s),
      gsoSize: mss,
      csumStart: l4Of(s),
      csumOffset: 16
    }),
    tcpPacket({ ...s, checksum: "partial" })
  )

export const plainFrame = (p: Uint8Array): Uint8Array => concat(new Uint8Array(12), p)

const byte = fc.integer({ min: 0, max: 255 })

/** Arbitrary TCP specs (without payload) for the properties. */
export const arbFlow = fc.record({
  v6: fc.boolean(),
  tos: byte.map((b) => b & 0xfc),
  flow: fc.integer({ min: 0, max: 0xfffff }),
  ttl: fc.integer({ min: 1, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  df: fc.boolean(),
  sport: fc.integer({ min: 1, max: 0xffff }),
  dport: fc.integer({ min: 1, max: 0xffff }),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  ack: fc.integer({ min: 0, max: 0xffffffff }),
  window: fc.integer({ min: 0, max: 0xffff }),
  options: fc.oneof(
    fc.constant(new Uint8Array(0)),
    fc.tuple(fc.nat(), fc.nat()).map(([a, b]) => timestamps(a, b)),
    fc.integer({ min: 1, max: 10 }).chain((w) => fc.uint8Array({ minLength: w * 4, maxLength: w * 4 }))
  )
})

/**
 * Asserts two lists of packets are byte-identical: a fast comparison first (deep equality over typed arrays is slow
 * in property runs), the readable diff only when they differ.
 */
export const expectSamePackets = (
  actual: ReadonlyArray<Uint8Array>,
  expected: ReadonlyArray<Uint8Array>,
  toEqual: (a: unknown, b: unknown) => void
): void => {
  const same = actual.length === expected.length &&
    actual.every((a, i) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(expected[i]!))
  if (!same) toEqual(actual.map((a) => Array.from(a)), expected.map((e) => Array.from(e)))
}

// ---------------------------------------------------------------------------------------------------------------
// UDP (gso_type UDP_L4): datagrams, kernel-style super-packets, the datagrams a super-packet must be cut into

export interface UdpSpec {
  readonly v6?: boolean
  readonly src?: string
  readonly dst?: string
  /** IPv4 TOS or IPv6 traffic class. */
  readonly tos?: number
  readonly flow?: number
  /** TTL or hop limit. */
  readonly ttl?: number
  readonly id?: number
  readonly df?: boolean
  /** IPv4 option bytes (a multiple of 4). */
  readonly ipOptions?: Uint8Array
  /** An IPv6 hop-by-hop header (8 bytes of options padding) before UDP. */
  readonly hopByHop?: boolean
  readonly sport?: number
  readonly dport?: number
  readonly payload?: Uint8Array
  /** A UDP length field other than the datagram's bytes. */
  readonly udpLength?: number
  /**
   * "full" (default; a computed 0 sent as 0xffff), "partial" (the pseudo-header sum over the UDP length, as the kernel
   * leaves it in a UDP_L4 super-packet), "bad", or "none" (0, no checksum in IPv4).
   */
  readonly checksum?: "full" | "partial" | "bad" | "none"
}

export const PROTO_UDP = 17

/** Offset of the UDP header in a packet built from `s`. */
export const udpL4Of = (s: UdpSpec): number =>
  s.v6 === true ? 40 + (s.hopByHop === true ? 8 : 0) : 20 + (s.ipOptions?.length ?? 0)

/** Folded sum of the pseudo-header of an IP packet `p` (built here) for an upper-layer length and protocol. */
const pseudoSum = (p: Uint8Array, length: number, proto: number): number => {
  if (p[0]! >>> 4 === 6) {
    const ph = new Uint8Array(40)
    ph.set(p.subarray(8, 40))
    new DataView(ph.buffer).setUint32(32, length)
    ph[39] = proto
    return refSum(ph)
  }
  const ph = new Uint8Array(12)
  ph.set(p.subarray(12, 20))
  ph[9] = proto
  new DataView(ph.buffer).setUint16(10, length)
  return refSum(ph)
}

export const udpPacket = (s: UdpSpec): Uint8Array => {
  const payload = s.payload ?? new Uint8Array(0)
  const l4 = udpL4Of(s)
  const p = new Uint8Array(l4 + 8 + payload.length)
  const dv = new DataView(p.buffer)
  if (s.v6 === true) {
    dv.setUint32(0, ((6 << 28) | ((s.tos ?? 0) << 20) | (s.flow ?? 0x2468a)) >>> 0)
    dv.setUint16(4, p.length - 40)
    p[6] = s.hopByHop === true ? 0 : PROTO_UDP
    p[7] = s.ttl ?? 64
    p.set(ip6(s.src ?? "2001:db8:1::10"), 8)
    p.set(ip6(s.dst ?? "2001:db8:2::20"), 24)
    if (s.hopByHop === true) {
      p[40] = PROTO_UDP
      p[41] = 0
      p[42] = 1 // PadN
      p[43] = 4
    }
  } else {
    const ipOptions = s.ipOptions ?? new Uint8Array(0)
    p[0] = 0x40 | ((20 + ipOptions.length) / 4)
    p[1] = s.tos ?? 0
    dv.setUint16(2, p.length)
    dv.setUint16(4, s.id ?? 0x3a00)
    dv.setUint16(6, s.df === false ? 0 : 0x4000)
    p[8] = s.ttl ?? 64
    p[9] = PROTO_UDP
    dv.setUint32(12, ip4(s.src ?? "192.0.2.10"))
    dv.setUint32(16, ip4(s.dst ?? "198.51.100.20"))
    p.set(ipOptions, 20)
    dv.setUint16(10, refChecksum(p.subarray(0, l4)))
  }
  const udpLength = p.length - l4
  dv.setUint16(l4, s.sport ?? 50000)
  dv.setUint16(l4 + 2, s.dport ?? 4789)
  dv.setUint16(l4 + 4, s.udpLength ?? udpLength)
  p.set(payload, l4 + 8)
  const mode = s.checksum ?? "full"
  const pseudo = pseudoSum(p, udpLength, PROTO_UDP)
  if (mode === "partial") {
    dv.setUint16(l4 + 6, pseudo)
  } else if (mode !== "none") {
    const c = refChecksum(p.subarray(l4), pseudo) || 0xffff
    dv.setUint16(l4 + 6, mode === "bad" ? c ^ 0x0101 : c)
  }
  return p
}

/** True when the UDP checksum of a reference-layout datagram is right (and present). */
export const udpChecksumValid = (p: Uint8Array, l4: number): boolean => {
  if (p[l4 + 6] === 0 && p[l4 + 7] === 0) return false
  return refSum(p.subarray(l4), pseudoSum(p, p.length - l4, PROTO_UDP)) === 0xffff
}

/** The datagrams a UDP super-packet built from `s` must be cut into, built one by one from scratch. */
export const expectedUdpSegments = (s: UdpSpec, size: number): Array<Uint8Array> => {
  const payload = s.payload ?? new Uint8Array(0)
  const count = Math.max(1, Math.ceil(payload.length / size))
  const segs: Array<Uint8Array> = []
  for (let k = 0; k < count; k++) {
    segs.push(udpPacket({
      ...s,
      id: ((s.id ?? 0x3a00) + k) & 0xffff,
      payload: payload.subarray(k * size, Math.min(payload.length, (k + 1) * size)),
      checksum: "full"
    }))
  }
  return segs
}

/** The datagrams of one burst of `s` with `size`-byte payloads (the spec's ID on the first). */
export const udpBurst = (s: UdpSpec, size: number, total: number, seed = 0): Array<Uint8Array> =>
  expectedUdpSegments({ ...s, payload: patternedFrom(total, seed) }, size)

/** What the kernel writes for a UDP super-packet `s` cut at `size`: header + packet with the partial checksum. */
export const udpSuperFrame = (s: UdpSpec, size: number): Uint8Array => {
  const l4 = udpL4Of(s)
  return concat(
    vnet({ flags: 1, gsoType: 5, hdrLen: l4 + 8, gsoSize: size, csumStart: l4, csumOffset: 6 }),
    udpPacket({ ...s, checksum: "partial" })
  )
}

/** Arbitrary UDP specs (without payload) for the properties. */
export const arbUdpFlow = fc.record({
  v6: fc.boolean(),
  tos: byte.map((b) => b & 0xfc),
  flow: fc.integer({ min: 0, max: 0xfffff }),
  ttl: fc.integer({ min: 1, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  df: fc.boolean(),
  sport: fc.integer({ min: 1, max: 0xffff }),
  dport: fc.integer({ min: 1, max: 0xffff })
})
