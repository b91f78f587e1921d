/**
 * Software TCP segmentation (GSO) of the super-packets a TUN device with TUN_F_TSO4 | TUN_F_TSO6 hands over, and
 * completion of the partial checksums it leaves with TUN_F_CSUM. Segments are built the way the kernel's
 * tcp_gso_segment / inet_gso_segment / ipv6_gso_segment build them, so the peer sees what a NIC with TSO would send.
 * Pure, synchronous; one call per packet or per batch.
 */
import * as Arena from "./Arena.js"
import * as Checksum from "./Checksum.js"
import { HEADROOM } from "./Encap.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"
import * as VirtioNet from "./VirtioNet.js"

const PROTO_TCP = 6
const TCP_MIN_HEADER = 20
const TCP_FIN = 0x01
const TCP_PSH = 0x08
const TCP_CWR = 0x80

/** Why a packet could not be segmented (negative, so a count of segments and an error share one return value). */
export const GsoError = {
  /** Shorter than its headers, or its IP length field disagrees with the bytes read. */
  Truncated: -1,
  /** Not the IP version its gso_type names, not TCP, an IPv4 fragment, a TCP data offset below 5, gso_size 0. */
  BadHeader: -2,
  /** A gso_type other than TCPv4/TCPv6 (UDP), or an IPv6 extension header other than hop-by-hop/destination options. */
  Unsupported: -3,
  /** NEEDS_CSUM with csum_start/csum_offset outside the packet. */
  BadChecksumOffsets: -4
} as const

export type GsoError = (typeof GsoError)[keyof typeof GsoError]

/**
 * Offset of the TCP header in a TCPv4 super-packet, or a `GsoError`. IPv4 options are allowed: inet_gso_segment
 * copies them into every segment.
 */
const tcpOffset4 = (p: Uint8Array): number => {
  const length = p.length
  if (length < Ipv4.MIN_HEADER) return GsoError.Truncated
  if (Ipv4.version(p) !== 4) return GsoError.BadHeader
  const hl = Ipv4.headerLength(p)
  if (hl < Ipv4.MIN_HEADER) return GsoError.BadHeader
  if (hl > length || Ipv4.totalLength(p) !== length) return GsoError.Truncated
  if (Ipv4.protocol(p) !== PROTO_TCP || Ipv4.isFragment(p)) return GsoError.BadHeader
  return hl
}

/**
 * Offset of the TCP header in a TCPv6 super-packet, or a `GsoError`. Hop-by-hop and destination options headers are
 * copied into every segment like the kernel does; a routing header would change the pseudo-header's destination
 * (RFC 8200 8.1) and a fragment header cannot precede a super-packet, so both are refused. Jumbograms (BIG TCP) are
 * not supported: a TUN device's GSO limit stays at 64 KB unless raised by hand.
 */
const tcpOffset6 = (p: Uint8Array): number => {
  const length = p.length
  if (length < Ipv6.HEADER) return GsoError.Truncated
  if (Ipv6.version(p) !== 6) return GsoError.BadHeader
  if (Ipv6.HEADER + Ipv6.payloadLength(p) !== length) return GsoError.Truncated
  let next = Ipv6.nextHeader(p)
  let offset = Ipv6.HEADER
  while (next === Ipv6.NEXT_HOP_BY_HOP || next === Ipv6.NEXT_DEST_OPTS) {
    if (offset + 8 > length) return GsoError.Truncated
    next = p[offset]!
    offset += (p[offset + 1]! + 1) * 8
  }
  if (next !== PROTO_TCP) return GsoError.Unsupported
  return offset
}

/** Folded pseudo-header sum without the length, which each segment adds. */
const pseudoBase = (p: Uint8Array, v6: boolean): number =>
  v6
    ? Checksum.pseudoHeader6(p, Ipv6.SRC_OFFSET, 0, PROTO_TCP)
    : Checksum.pseudoHeader4(Ipv4.src(p), Ipv4.dst(p), PROTO_TCP, 0)

/** Computes the TCP checksum of the segment whose TCP header is at `l4` (RFC 9293 3.1) in full. */
const tcpChecksum = (seg: Uint8Array, l4: number, base: number): void => {
  const tcpLength = seg.length - l4
  seg[l4 + 16] = 0
  seg[l4 + 17] = 0
  const value = Checksum.checksum(seg, l4, tcpLength, Checksum.add(base, tcpLength))
  seg[l4 + 16] = value >>> 8
  seg[l4 + 17] = value
}

/**
 * Turns one packet read from the TUN device (`packet`, the IP packet after the virtio_net_hdr decoded as `hdr`) into
 * the packets to encapsulate, appended to `out`:
 * - no GSO: the packet itself (same view), its NEEDS_CSUM checksum completed in place;
 * - a TCP super-packet whose payload fits in one segment: the packet itself, its TCP checksum computed in place;
 * - a TCP super-packet: segments of gso_size payload bytes (the last may be shorter), each a copy of the IP and TCP
 *   headers with its own IPv4 total length, ID (the super-packet's ID + index, mod 2^16) and header checksum or IPv6
 *   payload length, sequence number (+ payload bytes before it), flags (CWR only on the first segment, FIN and PSH
 *   only on the last, as tcp_gso_segment) and a TCP checksum computed in full. Each segment is a view into `arena`
 *   with `HEADROOM` writable bytes in front of it, so `encapBatch` writes the outer header in place.
 *
 * The partial checksum of a super-packet is not used: every segment's checksum is computed from its bytes. Returns
 * the number of packets appended (>= 1), or a negative `GsoError` with nothing appended and the packet unchanged.
 * Never throws, never reads outside `packet`.
 */
export const segment = (
  packet: Uint8Array,
  hdr: Readonly<VirtioNet.Header>,
  out: Array<Uint8Array>,
  arena: Arena.Arena
): number => {
  const type = hdr.gsoType & ~VirtioNet.GsoType.Ecn
  if (type === VirtioNet.GsoType.None) {
    if (packet.length === 0) return GsoError.Truncated
    if (!VirtioNet.finishChecksum(packet, hdr)) return GsoError.BadChecksumOffsets
    out.push(packet)
    return 1
  }
  let l4: number
  if (type === VirtioNet.GsoType.TcpV4) l4 = tcpOffset4(packet)
  else if (type === VirtioNet.GsoType.TcpV6) l4 = tcpOffset6(packet)
  else return GsoError.Unsupported
  if (l4 < 0) return l4
  const length = packet.length
  if (l4 + TCP_MIN_HEADER > length) return GsoError.Truncated
  const tcpHeader = (packet[l4 + 12]! >>> 4) << 2
  if (tcpHeader < TCP_MIN_HEADER) return GsoError.BadHeader
  const hl = l4 + tcpHeader
  if (hl > length) return GsoError.Truncated
  const mss = hdr.gsoSize
  if (mss <= 0) return GsoError.BadHeader
  const v6 = type === VirtioNet.GsoType.TcpV6
  const base = pseudoBase(packet, v6)
  const payload = length - hl
  if (payload <= mss) {
    // Nothing to split (tcp_gso_segment leaves such a packet whole); only the checksum is missing.
    tcpChecksum(packet, l4, base)
    out.push(packet)
    return 1
  }

  const count = Math.ceil(payload / mss)
  const id = v6 ? 0 : Ipv4.id(packet)
  const seq = ((packet[l4 + 4]! << 24) | (packet[l4 + 5]! << 16) | (packet[l4 + 6]! << 8) | packet[l4 + 7]!) >>> 0
  const flagsByte = packet[l4 + 13]!
  for (let k = 0; k < count; k++) {
    const from = hl + k * mss
    const size = Math.min(mss, length - from)
    const seg = Arena.take(arena, HEADROOM, hl + size)
    seg.set(packet.subarray(0, hl))
    seg.set(packet.subarray(from, from + size), hl)
    if (v6) {
      Ipv6.setPayloadLength(seg, hl + size - Ipv6.HEADER)
    } else {
      Ipv4.setTotalLength(seg, hl + size)
      Ipv4.setId(seg, id + k)
      Ipv4.computeChecksum(seg)
    }
    const s = (seq + k * mss) >>> 0
    seg[l4 + 4] = s >>> 24
    seg[l4 + 5] = s >>> 16
    seg[l4 + 6] = s >>> 8
    seg[l4 + 7] = s
    let f = flagsByte
    if (k > 0) f &= ~TCP_CWR
    if (k < count - 1) f &= ~(TCP_FIN | TCP_PSH)
    seg[l4 + 13] = f
    tcpChecksum(seg, l4, base)
    out.push(seg)
  }
  return count
}

/**
 * `segment` over a batch of frames read from the TUN device, each starting with its virtio_net_hdr. Resets `arena`
 * first: the segments stay valid until the next call with the same arena (packets that were not split stay views into
 * the frames). Frames that cannot be segmented are left out and counted in the result.
 */
export const segmentBatch = (
  frames: ReadonlyArray<Uint8Array>,
  out: Array<Uint8Array>,
  arena: Arena.Arena
): number => {
  Arena.reset(arena)
  const hdr = VirtioNet.makeHeader()
  let dropped = 0
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!
    if (f.length <= VirtioNet.HEADER_SIZE) {
      dropped++
      continue
    }
    VirtioNet.read(f, 0, hdr)
    if (segment(f.subarray(VirtioNet.HEADER_SIZE), hdr, out, arena) < 0) dropped++
  }
  return dropped
}
