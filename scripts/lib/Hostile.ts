/**
 * Hostile and malformed packets for the reliability tests and the soak script: builders written from the RFC
 * layouts (RFC 791, RFC 8200, RFC 768), and two catalogues, one aimed at a daemon's raw sockets from the network and
 * one written into its TUN device, each packet with what should become of it. Plain data: the crafter (craft.ts)
 * sends the frames, the caller compares the daemon's and the kernel's counters with the expectations.
 */
import { parseIpv4, parseIpv6 } from "../../src/domain/Address.js"
import type { SendItem, SendReport } from "./craft.js"

// ---------------------------------------------------------------------------------------------------------------
// Builders

const v4 = (text: string): number => {
  const a = parseIpv4(text)
  if (a === undefined) throw new Error(`bad IPv4 literal ${text}`)
  return a
}

const v6 = (text: string): Uint8Array => {
  const a = parseIpv6(text)
  if (a === undefined) throw new Error(`bad IPv6 literal ${text}`)
  return a
}

/** RFC 1071 one's-complement sum, folded to 16 bits. */
const sum16 = (bytes: Uint8Array, initial = 0): number => {
  let sum = initial
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return sum
}

export interface Ipv4Spec {
  readonly src: string
  readonly dst: string
  readonly proto: number
  readonly payload: Uint8Array
  readonly ttl?: number
  readonly tos?: number
  /** Header length in 32-bit words (default 5); words past the fifth are NOP options (RFC 791 option type 1). */
  readonly ihl?: number
  /** The version nibble (default 4). */
  readonly version?: number
  readonly id?: number
  readonly df?: boolean
  readonly mf?: boolean
  /** Fragment offset in 8-byte units. */
  readonly offset8?: number
  /** Total length field (default: the real length). */
  readonly totalLength?: number
  /** Write a wrong header checksum. */
  readonly badChecksum?: boolean
}

/** An IPv4 packet (a header of at least 20 bytes even when `ihl` says less, as a forged header would have). */
export const ipv4 = (s: Ipv4Spec): Uint8Array => {
  const ihl = s.ihl ?? 5
  const header = Math.max(ihl * 4, 20)
  const p = new Uint8Array(header + s.payload.length)
  const dv = new DataView(p.buffer)
  p[0] = ((s.version ?? 4) << 4) | ihl
  p[1] = s.tos ?? 0
  dv.setUint16(2, s.totalLength ?? p.length)
  dv.setUint16(4, s.id ?? 0x1234)
  dv.setUint16(6, (s.df === true ? 0x4000 : 0) | (s.mf === true ? 0x2000 : 0) | (s.offset8 ?? 0))
  p[8] = s.ttl ?? 64
  p[9] = s.proto
  dv.setUint32(12, v4(s.src))
  dv.setUint32(16, v4(s.dst))
  p.fill(1, 20, header) // NOP options
  const checksum = ~sum16(p.subarray(0, Math.max(ihl, 5) * 4)) & 0xffff
  dv.setUint16(10, s.badChecksum === true ? checksum ^ 0x5a5a : checksum)
  p.set(s.payload, header)
  return p
}

export interface Ipv6Spec {
  readonly src: string
  readonly dst: string
  readonly next: number
  readonly payload: Uint8Array
  readonly hop?: number
  readonly tc?: number
  /** Payload length field (default: the real length). */
  readonly payloadLength?: number
}

export const ipv6 = (s: Ipv6Spec): Uint8Array => {
  const p = new Uint8Array(40 + s.payload.length)
  const dv = new DataView(p.buffer)
  dv.setUint32(0, (6 << 28) | ((s.tc ?? 0) << 20))
  dv.setUint16(4, s.payloadLength ?? s.payload.length)
  p[6] = s.next
  p[7] = s.hop ?? 64
  p.set(v6(s.src), 8)
  p.set(v6(s.dst), 24)
  p.set(s.payload, 40)
  return p
}

/** The 8-byte tag a datagram carries first, as the crafter's `udp-count` reads it. */
const tagBytes = (tag: string): Uint8Array => {
  const b = new Uint8Array(8).fill(0x20)
  for (let i = 0; i < Math.min(tag.length, 8); i++) b[i] = tag.charCodeAt(i) & 0x7f
  return b
}

/** A UDP datagram carrying `tag`, without a checksum (RFC 768: zero means none, allowed over IPv4). */
export const udp4 = (port: number, tag: string, extra = 8): Uint8Array => {
  const d = new Uint8Array(8 + 8 + extra)
  const dv = new DataView(d.buffer)
  dv.setUint16(0, 40000)
  dv.setUint16(2, port)
  dv.setUint16(4, d.length)
  d.set(tagBytes(tag), 8)
  return d
}

/** A UDP datagram for IPv6, where the checksum is mandatory (RFC 8200 8.1). */
export const udp6 = (src: string, dst: string, port: number, tag: string): Uint8Array => {
  const d = udp4(port, tag)
  const pseudo = new Uint8Array(40)
  pseudo.set(v6(src), 0)
  pseudo.set(v6(dst), 16)
  new DataView(pseudo.buffer).setUint32(32, d.length)
  pseudo[39] = 17
  const c = ~sum16(d, sum16(pseudo)) & 0xffff
  new DataView(d.buffer).setUint16(6, c === 0 ? 0xffff : c)
  return d
}

// ---------------------------------------------------------------------------------------------------------------
// Catalogues

/**
 * What becomes of one round of an item's frames: counted by the daemon under a drop reason, delivered (a UDP
 * datagram with this tag reaches the listener behind the tunnel), or nothing the daemon sees.
 */
export type Outcome =
  | { readonly _tag: "Drop"; readonly reason: string }
  | { readonly _tag: "Delivered"; readonly tag: string }
  | { readonly _tag: "Unseen" }

export interface HostileItem {
  readonly name: string
  readonly frames: ReadonlyArray<Uint8Array>
  readonly outcome: Outcome
  /**
   * Kernel counters (/proc/net/snmp and /proc/net/netstat of the receiving namespace, as "Ip.InHdrErrors",
   * "IpExt.InCsumErrors") and how much one round adds to each.
   */
  readonly kernel?: Readonly<Record<string, number>>
  /** The send is refused by the sending kernel with this errno (nothing leaves). */
  readonly refused?: number
  /** Rounds at most (default: all of the plan's). */
  readonly rounds?: number
  /** Base of a per-round IPv4 identification (fragments). */
  readonly freshId?: number
}

const drop = (reason: string): Outcome => ({ _tag: "Drop", reason })
const delivered = (tag: string): Outcome => ({ _tag: "Delivered", tag })
const unseen: Outcome = { _tag: "Unseen" }

export interface DecapTarget {
  /** The daemon's underlay address (outer destination) and its fixed remote (the honest outer source). */
  readonly local: string
  readonly remote: string
  /** Another address on the remote's link, for spoofed outer sources. */
  readonly spoof: string
  /** Inner addresses: a host behind the remote, and the daemon host's own tunnel address (the listener's). */
  readonly innerSrc4: string
  readonly innerDst4: string
  readonly innerSrc6: string
  readonly innerDst6: string
  /** UDP port of the listener on `innerDst4`. */
  readonly port: number
}

/**
 * Packets from the network to a daemon's raw sockets (protocol 4 and 41), to be sent whole through an AF_PACKET
 * socket on the remote's link so that no kernel on the sending side fixes them. The receiving kernel checks the
 * outer header itself (ip_rcv: version, IHL, checksum, total length) and reassembles fragments before any raw
 * socket sees them: those items are "Unseen" by the daemon and counted by the kernel instead.
 */
export const decapCatalogue = (t: DecapTarget): ReadonlyArray<HostileItem> => {
  const outer = (proto: number, payload: Uint8Array, more: Partial<Ipv4Spec> = {}) =>
    ipv4({ src: t.remote, dst: t.local, proto, payload, ...more })
  const inner4 = (payload: Uint8Array, more: Partial<Ipv4Spec> = {}) =>
    ipv4({ src: t.innerSrc4, dst: t.innerDst4, proto: 17, payload, ...more })
  const inner6 = (more: Partial<Ipv6Spec> = {}) =>
    ipv6({
      src: more.src ?? t.innerSrc6,
      dst: t.innerDst6,
      next: 17,
      payload: udp6(more.src ?? t.innerSrc6, t.innerDst6, t.port, "v6"),
      ...more
    })
  const good4 = inner4(udp4(t.port, "x"))
  const goodUdp = (tag: string) => inner4(udp4(t.port, tag))
  const trailer = (() => {
    // outer total length covers the inner packet; 16 bytes of junk follow it (link-layer padding, or an attack)
    const packet = outer(4, goodUdp("trailer"))
    const framed = new Uint8Array(packet.length + 16).fill(0xee)
    framed.set(packet, 0)
    return framed
  })()
  const fragmented = goodUdp("frag")
  const firstPart = fragmented.subarray(0, 24) // a multiple of 8 (RFC 791)
  const inner6Truncated = (delta: number) => {
    const p = inner6()
    return ipv6({ src: t.innerSrc6, dst: t.innerDst6, next: 17, payload: p.subarray(40), payloadLength: 24 + delta })
  }
  const badSource = (src: string) => outer(41, inner6({ src }))

  return [
    // The receiving kernel's own checks (ip_rcv_core)
    {
      name: "outer-bad-checksum-4",
      frames: [outer(4, good4, { badChecksum: true })],
      outcome: unseen,
      kernel: { "IpExt.InCsumErrors": 1, "Ip.InHdrErrors": 1 }
    },
    {
      name: "outer-bad-checksum-41",
      frames: [outer(41, inner6(), { badChecksum: true })],
      outcome: unseen,
      kernel: { "IpExt.InCsumErrors": 1, "Ip.InHdrErrors": 1 }
    },
    { name: "outer-ihl-4", frames: [outer(4, good4, { ihl: 4 })], outcome: unseen, kernel: { "Ip.InHdrErrors": 1 } },
    {
      name: "outer-length-longer",
      frames: [outer(4, good4, { totalLength: 20 + good4.length + 40 })],
      outcome: unseen,
      kernel: { "IpExt.InTruncatedPkts": 1 }
    },
    // ip_rcv trims bytes past the total length: the daemon sees a well-formed packet
    { name: "outer-length-shorter", frames: [trailer], outcome: delivered("trailer") },
    { name: "outer-options", frames: [outer(4, goodUdp("oopts"), { ihl: 7 })], outcome: delivered("oopts") },
    // A complete set is reassembled before raw delivery; a lone last fragment waits in the queue and expires.
    {
      name: "fragments-complete",
      frames: [
        outer(4, firstPart, { mf: true }),
        outer(4, fragmented.subarray(firstPart.length), { offset8: firstPart.length / 8 })
      ],
      outcome: delivered("frag"),
      kernel: { "Ip.ReasmReqds": 2, "Ip.ReasmOKs": 1 },
      freshId: 0x1000
    },
    {
      name: "fragment-alone",
      frames: [outer(41, new Uint8Array(16), { offset8: 8 })],
      outcome: unseen,
      kernel: { "Ip.ReasmReqds": 1 },
      rounds: 200,
      freshId: 0x8000
    },
    // A well-formed packet among the others
    { name: "plain", frames: [outer(4, goodUdp("plain"))], outcome: delivered("plain") },
    {
      name: "inner-options",
      frames: [outer(4, inner4(udp4(t.port, "iopts"), { ihl: 6 }))],
      outcome: delivered("iopts")
    },

    // The daemon's checks (behaviour.md "Decapsulation" 2-5)
    {
      name: "spoofed-source-4",
      frames: [ipv4({ src: t.spoof, dst: t.local, proto: 4, payload: good4 })],
      outcome: drop("decap_remote_mismatch")
    },
    {
      name: "spoofed-source-41",
      frames: [ipv4({ src: t.spoof, dst: t.local, proto: 41, payload: inner6() })],
      outcome: drop("decap_remote_mismatch")
    },
    { name: "zero-length-4", frames: [outer(4, new Uint8Array(0))], outcome: drop("decap_inner_truncated") },
    { name: "zero-length-41", frames: [outer(41, new Uint8Array(0))], outcome: drop("decap_inner_truncated") },
    { name: "inner-runt-4", frames: [outer(4, good4.subarray(0, 12))], outcome: drop("decap_inner_truncated") },
    { name: "inner-runt-41", frames: [outer(41, inner6().subarray(0, 30))], outcome: drop("decap_inner_truncated") },
    {
      name: "inner-length-longer-4",
      frames: [outer(4, inner4(udp4(t.port, "x"), { totalLength: good4.length + 20 }))],
      outcome: drop("decap_inner_truncated")
    },
    {
      name: "inner-length-shorter-4",
      frames: [outer(4, inner4(udp4(t.port, "x"), { totalLength: good4.length - 8 }))],
      outcome: drop("decap_inner_truncated")
    },
    {
      name: "inner-length-longer-41",
      frames: [outer(41, inner6Truncated(16))],
      outcome: drop("decap_inner_truncated")
    },
    {
      name: "inner-length-shorter-41",
      frames: [outer(41, inner6Truncated(-8))],
      outcome: drop("decap_inner_truncated")
    },
    {
      name: "inner-ihl-4",
      frames: [outer(4, inner4(udp4(t.port, "x"), { ihl: 4 }))],
      outcome: drop("decap_inner_bad_header")
    },
    {
      name: "inner-ihl-past-end",
      frames: [outer(4, inner4(new Uint8Array(8), { ihl: 15, totalLength: 28 }).subarray(0, 28))],
      outcome: drop("decap_inner_bad_header")
    },
    {
      name: "inner-bad-checksum",
      frames: [outer(4, inner4(udp4(t.port, "x"), { badChecksum: true }))],
      outcome: drop("decap_inner_bad_checksum")
    },
    { name: "ipv6-in-ipip", frames: [outer(4, inner6())], outcome: drop("decap_inner_bad_version") },
    { name: "ipv4-in-6in4", frames: [outer(41, good4)], outcome: drop("decap_inner_bad_version") },
    {
      name: "inner-version-5",
      frames: [outer(4, inner4(udp4(t.port, "x"), { version: 5 }))],
      outcome: drop("decap_inner_bad_version")
    },
    { name: "inner-ttl-0", frames: [outer(4, inner4(udp4(t.port, "x"), { ttl: 0 }))], outcome: drop("decap_ttl_zero") },
    { name: "inner-hop-limit-0", frames: [outer(41, inner6({ hop: 0 }))], outcome: drop("decap_ttl_zero") },
    // RFC 4213 3.6
    { name: "6in4-source-v4-mapped", frames: [badSource("::ffff:192.0.2.2")], outcome: drop("decap_bad_source") },
    { name: "6in4-source-v4-compatible", frames: [badSource("::192.0.2.2")], outcome: drop("decap_bad_source") },
    { name: "6in4-source-loopback", frames: [badSource("::1")], outcome: drop("decap_bad_source") },
    { name: "6in4-source-multicast", frames: [badSource("ff02::1")], outcome: drop("decap_bad_source") },
    { name: "6in4-source-unspecified", frames: [badSource("::")], outcome: drop("decap_bad_source") },
    // RFC 6040 4.2: CE on the outer cannot be carried by a Not-ECT inner
    { name: "ecn-ce-not-ect", frames: [outer(4, good4, { tos: 3 })], outcome: drop("decap_ecn_ce_not_ect") }
  ]
}

export interface EncapTarget {
  /** The daemon host's tunnel address (inner source) and the far end's (inner destination). */
  readonly innerSrc4: string
  readonly innerDst4: string
  readonly innerSrc6: string
  readonly innerDst6: string
  /** The daemon's fixed remote (an inner source equal to it would loop, RFC 2003 4). */
  readonly remote: string
}

/**
 * Packets written into the daemon's TUN device through an AF_PACKET socket on it: the kernel hands them to the
 * daemon exactly as written, which its own IP stack never would (it refuses an IHL below 5 from a raw socket with
 * EINVAL, and always fills in the checksum and total length of a well-formed header).
 */
export const tunCatalogue = (t: EncapTarget): ReadonlyArray<HostileItem> => {
  const p4 = (more: Partial<Ipv4Spec> = {}) =>
    ipv4({ src: t.innerSrc4, dst: t.innerDst4, proto: 17, payload: udp4(9, "tun"), ...more })
  const p6 = (more: Partial<Ipv6Spec> = {}) =>
    ipv6({ src: t.innerSrc6, dst: t.innerDst6, next: 17, payload: udp6(t.innerSrc6, t.innerDst6, 9, "tun"), ...more })
  const good = p4()
  return [
    { name: "version-5", frames: [p4({ version: 5 })], outcome: drop("encap_bad_version") },
    { name: "version-0", frames: [p4({ version: 0 })], outcome: drop("encap_bad_version") },
    { name: "runt", frames: [good.subarray(0, 12)], outcome: drop("encap_truncated") },
    { name: "length-longer", frames: [p4({ totalLength: good.length + 100 })], outcome: drop("encap_truncated") },
    { name: "length-shorter", frames: [p4({ totalLength: good.length - 4 })], outcome: drop("encap_truncated") },
    { name: "ipv6-length-longer", frames: [p6({ payloadLength: 200 })], outcome: drop("encap_truncated") },
    { name: "ihl-4", frames: [p4({ ihl: 4 })], outcome: drop("encap_bad_header") },
    {
      name: "ihl-past-end",
      frames: [p4({ ihl: 15, totalLength: 40 }).subarray(0, 40)],
      outcome: drop("encap_bad_header")
    },
    { name: "bad-checksum", frames: [p4({ badChecksum: true })], outcome: drop("encap_bad_checksum") },
    { name: "ttl-0", frames: [p4({ ttl: 0 })], outcome: drop("encap_ttl_zero") },
    { name: "hop-limit-0", frames: [p6({ hop: 0 })], outcome: drop("encap_ttl_zero") },
    { name: "loop", frames: [p4({ src: t.remote })], outcome: drop("encap_loop") }
  ]
}

/** Errno values the sending kernel answers with (asm-generic/errno*.h). */
export const EINVAL = 22
export const EMSGSIZE = 90

/**
 * Packets sent through the host's own IP stack into the tunnel (a raw IPPROTO_RAW socket addressed to the far
 * end): what the stack lets through and what it refuses. `mtu` is the TUN device's MTU; the daemon's own tunnel
 * MTU is taken to be 20 below it, so a DF packet of `mtu` bytes fits the device but not the path.
 */
export const stackCatalogue = (t: EncapTarget, mtu: number): ReadonlyArray<HostileItem> => {
  const p4 = (size: number, more: Partial<Ipv4Spec> = {}) =>
    ipv4({ src: t.innerSrc4, dst: t.innerDst4, proto: 17, payload: udp4(9, "stack", size - 36), ...more })
  return [
    { name: "ttl-0", frames: [p4(64, { ttl: 0 })], outcome: drop("encap_ttl_zero") },
    { name: "loop", frames: [p4(64, { src: t.remote })], outcome: drop("encap_loop") },
    { name: "too-big-df", frames: [p4(mtu, { df: true })], outcome: drop("encap_too_big") },
    { name: "over-device-mtu", frames: [p4(mtu + 20, { df: true })], outcome: unseen, refused: EMSGSIZE },
    { name: "ihl-4", frames: [p4(64, { ihl: 4 })], outcome: unseen, refused: EINVAL }
  ]
}

/** The crafter's form of the items (frames as hex). */
export const sendItems = (items: ReadonlyArray<HostileItem>): ReadonlyArray<SendItem> =>
  items.map((item) => ({
    name: item.name,
    frames: item.frames.map((f) => Buffer.from(f).toString("hex")),
    ...(item.rounds !== undefined ? { rounds: item.rounds } : {}),
    ...(item.freshId !== undefined ? { freshId: item.freshId } : {})
  }))

export interface Expectation {
  /** Drop reason -> count the daemon should add. */
  readonly drops: Readonly<Record<string, number>>
  /** Tag -> datagrams the listener should count. */
  readonly delivered: Readonly<Record<string, number>>
  /** Kernel counter -> increase. */
  readonly kernel: Readonly<Record<string, number>>
  /** Item name -> sends refused by the sending kernel (errno -> count) that were expected. */
  readonly refused: Readonly<Record<string, Readonly<Record<string, number>>>>
  /** Frames handed to the sending kernel, accepted or not. */
  readonly frames: number
}

const add = (into: Record<string, number>, key: string, n: number) => {
  if (n > 0) into[key] = (into[key] ?? 0) + n
}

/**
 * What a crafter's report means for the counters: each item's complete rounds (frames accepted / frames per round)
 * times its outcome and kernel counters; refused sends go under `refused`.
 */
export const expectationOf = (items: ReadonlyArray<HostileItem>, report: SendReport): Expectation => {
  const drops: Record<string, number> = {}
  const delivered: Record<string, number> = {}
  const kernel: Record<string, number> = {}
  const refused: Record<string, Record<string, number>> = {}
  let frames = 0
  for (const item of items) {
    const sent = report.items.find((r) => r.name === item.name)
    if (sent === undefined) continue
    const failed = Object.values(sent.errors).reduce((a, b) => a + b, 0)
    frames += sent.sent + failed
    if (failed > 0) refused[item.name] = sent.errors
    const rounds = Math.floor(sent.sent / item.frames.length)
    if (item.outcome._tag === "Drop") add(drops, item.outcome.reason, rounds)
    if (item.outcome._tag === "Delivered") add(delivered, item.outcome.tag, rounds)
    for (const [name, n] of Object.entries(item.kernel ?? {})) add(kernel, name, n * rounds)
  }
  return { drops, delivered, kernel, refused, frames }
}
