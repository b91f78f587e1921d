/**
 * Software segmentation (GSO) of the super-packets a TUN device with TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 |
 * TUN_F_USO6 hands over, and completion of the partial checksums it leaves with TUN_F_CSUM. TCP segments are built the
 * way the kernel's tcp_gso_segment / inet_gso_segment / ipv6_gso_segment build them, UDP datagrams (gso_type UDP_L4,
 * from local senders using the UDP_SEGMENT socket option) the way __udp_gso_segment does, so the peer sees what a NIC
 * with TSO/USO would send. Pure, synchronous; one call per packet or per batch.
 */
import * as Arena from "./Arena.js"
import * as Checksum from "./Checksum.js"
import { HEADROOM } from "./Encap.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"
import * as VirtioNet from "./VirtioNet.js"

const PROTO_TCP = 6
const PROTO_UDP = 17
const TCP_MIN_HEADER = 20
const UDP_HEADER = 8
const TCP_FIN = 0x01
const TCP_PSH = 0x08
const TCP_CWR = 0x80

/** Why a packet could not be segmented (negative, so a count of segments and an error share one return value). */
export const GsoError = {
  /** Shorter than its headers, or its IP length field disagrees with the bytes read. */
  Truncated: -1,
  /**
   * Not the IP version its gso_type names (for UDP_L4: neither IPv4 nor IPv6), not the transport protocol it names, an
   * IPv4 fragment, a TCP data offset below 5, gso_size 0, UDP_L4 with the ECN bit (the kernel refuses it too).
   */
  BadHeader: -2,
  /**
   * A gso_type other than TCPv4/TCPv6/UDP_L4 (UFO, type 3, is never offered), or an IPv6 extension header other than
   * hop-by-hop/destination options.
   */
  Unsupported: -3,
  /** NEEDS_CSUM with csum_start/csum_offset outside the packet. */
  BadChecksumOffsets: -4
} as const

export type GsoError = (typeof GsoError)[keyof typeof GsoError]

/**
 * Offset of the transport header in an IPv4 super-packet of protocol `proto`, or a `GsoError`. IPv4 options are
 * allowed: inet_gso_segment copies them into every segment.
 */
const l4Offset4 = (p: Uint8Array, proto: number): number => {
  const length = p.length
  if (length < Ipv4.MIN_HEADER) return GsoError.Truncated
  if (Ipv4.version(p) !== 4) return GsoError.BadHeader
  const hl = Ipv4.headerLength(p)
  if (hl < Ipv4.MIN_HEADER) return GsoError.BadHeader
  if (hl > length || Ipv4.totalLength(p) !== length) return GsoError.Truncated
  if (Ipv4.protocol(p) !== proto || Ipv4.isFragment(p)) return GsoError.BadHeader
  return hl
}

/**
 * Offset of the transport header in an IPv6 super-packet of protocol `proto`, or a `GsoError`. Hop-by-hop and
 * destination options headers are copied into every segment like the kernel does; a routing header would change the
 * pseudo-header's destination (RFC 8200 8.1) and a fragment header cannot precede a super-packet, so both are refused.
 * Jumbograms (BIG TCP) are not supported: a TUN device's GSO limit stays at 64 KB unless raised by hand.
 */
const l4Offset6 = (p: Uint8Array, proto: number): number => {
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
  if (next !== proto) return GsoError.Unsupported
  return offset
}

/** Folded pseudo-header sum without the length, which each segment adds. */
const pseudoBase = (p: Uint8Array, v6: boolean, proto: number): number =>
  v6
    ? Checksum.pseudoHeader6(p, Ipv6.SRC_OFFSET, 0, proto)
    : Checksum.pseudoHeader4(Ipv4.src(p), Ipv4.dst(p), proto, 0)

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
 * Sets the UDP length of the datagram whose UDP header is at `l4` to the bytes from there to the end, and computes its
 * checksum in full (RFC 768). A computed 0 is sent as 0xffff: 0 means "no checksum" in IPv4 and is not allowed in
 * IPv6 (RFC 8200 8.1).
 */
const udpFinish = (seg: Uint8Array, l4: number, base: number): void => {
  const udpLength = seg.length - l4
  seg[l4 + 4] = udpLength >>> 8
  seg[l4 + 5] = udpLength
  seg[l4 + 6] = 0
  seg[l4 + 7] = 0
  const value = Checksum.checksum(seg, l4, udpLength, Checksum.add(base, udpLength)) || 0xffff
  seg[l4 + 6] = value >>> 8
  seg[l4 + 7] = value
}

/**
 * Turns one packet read from the TUN device (`packet`, the IP packet after the virtio_net_hdr decoded as `hdr`) into
 * the packets to encapsulate, appended to `out`:
 * - no GSO: the packet itself (same view), its NEEDS_CSUM checksum completed in place;
 * - a TCP super-packet whose payload fits in one segment: the packet itself, its TCP checksum computed in place;
 * - a TCP super-packet: segments of gso_size payload bytes (the last may be shorter), each a copy of the IP and TCP
 *   headers with its own IPv4 total length, ID (the super-packet's ID + index, mod 2^16) and header checksum or IPv6
 *   payload length, sequence number (+ payload bytes before it), flags (CWR only on the first segment, FIN and PSH
 *   only on the last, as tcp_gso_segment) and a TCP checksum computed in full;
 * - a UDP super-packet (UDP_L4, IPv4 or IPv6 by its version nibble) whose payload fits in one datagram: the packet
 *   itself, its UDP length set and its checksum computed in place;
 * - a UDP super-packet: datagrams of gso_size payload bytes (the last may be shorter), each a copy of the IP and UDP
 *   headers with its own IPv4 total length, ID (the super-packet's ID + index, mod 2^16, as inet_gso_segment numbers
 *   UDP_L4 segments) and header checksum or IPv6 payload length, UDP length and a UDP checksum computed in full (a
 *   computed 0 sent as 0xffff). There are no flags to split and no ECN bit for UDP.
 * Each segment is a view into `arena` with `HEADROOM` writable bytes in front of it, so `encapBatch` writes the outer
 * header in place.
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
  if (type === VirtioNet.GsoType.UdpL4) {
    // virtio_net_hdr_to_skb refuses UDP_L4 with the ECN bit: no such super-packet exists.
    return hdr.gsoType === type ? segmentUdp(packet, hdr.gsoSize, out, arena) : GsoError.BadHeader
  }
  let l4: number
  if (type === VirtioNet.GsoType.TcpV4) l4 = l4Offset4(packet, PROTO_TCP)
  else if (type === VirtioNet.GsoType.TcpV6) l4 = l4Offset6(packet, PROTO_TCP)
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
  const base = pseudoBase(packet, v6, PROTO_TCP)
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
    const seg = cut(packet, hl, mss, k, id, v6, arena)
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
 * Segment `k` of a super-packet whose headers take `hl` bytes: the headers, the k-th `size` bytes of payload (the
 * last segment may be shorter), the IPv4 total length, ID (`id + k`, mod 2^16) and header checksum, or the IPv6
 * payload length; the transport header is the caller's to finish. A view into `arena` with HEADROOM in front.
 */
const cut = (
  packet: Uint8Array,
  hl: number,
  size: number,
  k: number,
  id: number,
  v6: boolean,
  arena: Arena.Arena
): Uint8Array => {
  const from = hl + k * size
  const n = Math.min(size, packet.length - from)
  const seg = Arena.take(arena, HEADROOM, hl + n)
  seg.set(packet.subarray(0, hl))
  seg.set(packet.subarray(from, from + n), hl)
  if (v6) {
    Ipv6.setPayloadLength(seg, hl + n - Ipv6.HEADER)
  } else {
    Ipv4.setTotalLength(seg, hl + n)
    Ipv4.setId(seg, id + k)
    Ipv4.computeChecksum(seg)
  }
  return seg
}

/** `segment` for gso_type UDP_L4 (see there). */
const segmentUdp = (packet: Uint8Array, size: number, out: Array<Uint8Array>, arena: Arena.Arena): number => {
  const length = packet.length
  if (length === 0) return GsoError.Truncated
  const version = packet[0]! >>> 4
  let l4: number
  if (version === 4) l4 = l4Offset4(packet, PROTO_UDP)
  else if (version === 6) l4 = l4Offset6(packet, PROTO_UDP)
  else return GsoError.BadHeader
  if (l4 < 0) return l4
  const hl = l4 + UDP_HEADER
  if (hl > length) return GsoError.Truncated
  if (size <= 0) return GsoError.BadHeader
  const v6 = version === 6
  const base = pseudoBase(packet, v6, PROTO_UDP)
  const payload = length - hl
  if (payload <= size) {
    // One datagram (__udp_gso_segment would refuse to split it): only its length and checksum are missing.
    udpFinish(packet, l4, base)
    out.push(packet)
    return 1
  }

  const count = Math.ceil(payload / size)
  const id = v6 ? 0 : Ipv4.id(packet)
  for (let k = 0; k < count; k++) {
    const seg = cut(packet, hl, size, k, id, v6, arena)
    udpFinish(seg, l4, base)
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
