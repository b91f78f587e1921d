/**
 * Software GRO for the TUN device: runs of consecutive in-order TCP segments of one flow in a received batch become
 * one super-packet written with a virtio_net_hdr (NEEDS_CSUM, gso_type TCPv4/TCPv6), so the kernel takes a whole
 * group in one write() and one trip through its stack; with the `udp` option, runs of UDP datagrams of one flow become
 * UDP_L4 super-packets the same way (Linux 6.2+ segments them again itself, in __udp_gso_segment, or hands them whole
 * to a socket with UDP_GRO). Pure, synchronous; one call per batch.
 *
 * What may be merged follows the kernel's own GRO (inet_gro_receive, ipv6_gro_receive, tcp_gro_receive,
 * udp_gro_receive_segment, Linux 6.x):
 * - IPv4 without options and not a fragment (only DF may be set), header checksum right, total length = bytes;
 *   same addresses, TOS (so an ECN CE mark ends a group), TTL and DF; IDs incrementing by one per segment, or, for
 *   TCP with DF set, all equal (an atomic datagram's ID means nothing, RFC 6864 4.1);
 * - IPv6 with TCP or UDP as the next header (no extension headers), payload length = bytes; same addresses, traffic
 *   class, flow label and hop limit;
 * - TCP: same ports, data offset, acknowledgment number, window and option bytes (the timestamp too: the kernel
 *   compares the options word by word, and segments sent in one burst share their timestamp); every flag equal
 *   (ECE too) except FIN and PSH, which end a group and may be on its last segment; SYN, RST, URG never merged; the
 *   sequence number continues the previous segment; a payload of at least one byte (pure ACKs are not merged);
 * - UDP: same ports; the UDP length field equal to the datagram's bytes; a payload of at least one byte; a checksum
 *   present (an IPv4 checksum of 0 means none: such a datagram is never merged, as the kernel requires, since the
 *   segments the kernel cuts from a super-packet always get one); at most 64 datagrams per group (UDP_GRO_CNT_MAX);
 * - every segment but the last carries exactly gso_size (the first segment's payload) bytes, the last at most that;
 * - the super-packet is at most 65535 bytes;
 * - every merged segment's TCP or UDP checksum was verified: a NEEDS_CSUM write is not verified again by the kernel,
 *   so a corrupt segment is passed through alone and unchanged, for the kernel to drop.
 * Some choices are stricter than the kernel: a TCP segment with CWR is never merged (the kernel lets it start a group,
 * whose super-packet then needs the GSO ECN bit); UDP IDs must increment (the kernel ignores them for UDP, but the
 * segments it cuts get incrementing IDs, and merging must not change what the receiver sees); and only runs of
 * consecutive packets in the batch are merged (the kernel keeps several flows open at once).
 *
 * Packets that are not merged get an all-zero header (flags 0, GSO none): the kernel verifies their checksums as for
 * any received packet. DATA_VALID is not used: the kernel ignores it on TUN writes (measured).
 */
import * as Arena from "./Arena.js"
import * as Checksum from "./Checksum.js"
import * as Gso from "./Gso.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"
import * as VirtioNet from "./VirtioNet.js"

const PROTO_TCP = 6
const PROTO_UDP = 17
const TCP_MIN_HEADER = 20
const TCP_FIN = 0x01
const TCP_SYN = 0x02
const TCP_RST = 0x04
const TCP_PSH = 0x08
const TCP_URG = 0x20
const TCP_CWR = 0x80
const NEVER_MERGED = TCP_SYN | TCP_RST | TCP_URG | TCP_CWR
const ENDS_GROUP = TCP_FIN | TCP_PSH
const UDP_HEADER = 8
/** `csum_offset` of the UDP checksum (struct udphdr), the only one virtio_net_hdr_to_skb accepts for UDP_L4. */
const UDP_CSUM_OFFSET = 6
/** The kernel's UDP_GRO_CNT_MAX (net/ipv4/udp_offload.c): datagrams per UDP super-packet. */
const UDP_MAX_COUNT = 64
const MAX_PACKET = 0xffff
const HDR = VirtioNet.HEADER_SIZE

/** What `coalesce` may merge besides TCP. */
export interface CoalesceOptions {
  /**
   * Merge UDP datagrams into UDP_L4 super-packets too. Only for a device whose kernel takes them: one where
   * TUNSETOFFLOAD accepted TUN_F_USO4 | TUN_F_USO6 (Linux 6.2+; older kernels refuse such a write with EINVAL).
   */
  readonly udp: boolean
  /**
   * The TUN device's MTU: the segment size given to TCP super-packets that arrive already coalesced (`superPacketL4`),
   * whose own segment size was lost on the way. Default 1480.
   */
  readonly mtu?: number
}

const TCP_ONLY: CoalesceOptions = { udp: false }
const DEFAULT_MTU = 1480
/**
 * Scratch header for the kernel-GRO super-packets `coalesce` and `splitSuperPackets` handle (filled and used at
 * once, never kept).
 */
const superScratch = VirtioNet.makeHeader()

/** IPv4 ID rule of an open TCP group, decided by its second segment. */
const IdUnknown = 0
const IdIncrementing = 1
const IdFixed = 2
const IdMismatch = -1

/**
 * The IPv4 ID rule once a segment with ID `id` joins a group of `count` segments whose first has `headId`, or
 * IdMismatch. Linux (inet_gro_flush) decides at the second segment between incrementing IDs and, for DF packets, a
 * fixed ID.
 */
const idRuleAfter = (rule: number, headId: number, id: number, count: number, df: boolean): number => {
  if (rule === IdUnknown) {
    if (id === ((headId + 1) & 0xffff)) return IdIncrementing
    return id === headId && df ? IdFixed : IdMismatch
  }
  if (rule === IdFixed) return id === headId ? IdFixed : IdMismatch
  return id === ((headId + count) & 0xffff) ? IdIncrementing : IdMismatch
}

/** The transport protocol of a packet `candidate` accepted (its L4 header at `l4`). */
const protoOf = (p: Uint8Array, l4: number): number => (l4 === Ipv6.HEADER ? p[6]! : p[9]!)

/**
 * Offset of the TCP (or, with `udp`, UDP) header when `p` may join a group (the checks that need no transport
 * checksum pass), else -1. Reads only inside `p`.
 */
const candidate = (p: Uint8Array, udp: boolean): number => {
  const length = p.length
  if (length === 0) return -1
  const version = p[0]! >>> 4
  let l4: number
  if (version === 4) {
    // 0x45: version 4 without options, as inet_gro_receive requires.
    if (length < Ipv4.MIN_HEADER + UDP_HEADER || p[0] !== 0x45 || Ipv4.totalLength(p) !== length) return -1
    // Flags and fragment offset: DF alone, or nothing (the reserved bit, MF and an offset all flush in Linux).
    if ((p[6]! & 0xbf) !== 0 || p[7] !== 0) return -1
    l4 = Ipv4.MIN_HEADER
  } else if (version === 6) {
    if (length < Ipv6.HEADER + UDP_HEADER || Ipv6.HEADER + Ipv6.payloadLength(p) !== length) return -1
    l4 = Ipv6.HEADER
  } else {
    return -1
  }
  const proto = protoOf(p, l4)
  if (proto === PROTO_TCP) {
    if (l4 + TCP_MIN_HEADER > length) return -1
    const tcpHeader = (p[l4 + 12]! >>> 4) << 2
    if (tcpHeader < TCP_MIN_HEADER || l4 + tcpHeader >= length) return -1
    if ((p[l4 + 13]! & NEVER_MERGED) !== 0) return -1
  } else if (proto === PROTO_UDP && udp) {
    // udp_gro_receive_segment: a UDP length other than the bytes (padding, or a lie) or an empty payload flushes,
    // and so does a datagram without a checksum (IPv4 checksum 0).
    const udpLength = (p[l4 + 4]! << 8) | p[l4 + 5]!
    if (udpLength !== length - l4 || udpLength <= UDP_HEADER) return -1
    if (p[l4 + 6] === 0 && p[l4 + 7] === 0) return -1
  } else {
    return -1
  }
  if (l4 === Ipv4.MIN_HEADER && !Ipv4.verifyChecksum(p)) return -1
  return l4
}

/** Folded pseudo-header sum of the packet whose `proto` header is at `l4` (RFC 9293 3.1, RFC 768, RFC 8200 8.1). */
const pseudo = (p: Uint8Array, l4: number, l4Length: number, proto: number): number =>
  l4 === Ipv6.HEADER
    ? Checksum.pseudoHeader6(p, Ipv6.SRC_OFFSET, l4Length, proto)
    : Checksum.pseudoHeader4(Ipv4.src(p), Ipv4.dst(p), proto, l4Length)

/** True when the TCP or UDP checksum of a candidate is right. */
const checksumOk = (p: Uint8Array, l4: number, proto: number): boolean => {
  const l4Length = p.length - l4
  return Checksum.sum(p, l4, l4Length, pseudo(p, l4, l4Length, proto)) === 0xffff
}

/**
 * Offset of the TCP header when `p`, an inner packet as `decapBatch` delivers it, is a TCP super-packet that this
 * host's kernel built before the raw socket got it, else -1. A network driver's GRO (on by default) coalesces
 * consecutive segments of a flow carried in IPIP or 6in4 (ipip_gro_receive and the sit GRO handler, built into the
 * kernel whether or not its tunnel modules are loaded) into one packet of up to 64 KB: the IP length and header
 * checksum cover the whole, FIN and PSH come from the last segment, and the TCP checksum field holds only the
 * pseudo-header sum over the whole TCP length (tcp4_gro_complete, tcp6_gro_complete: the CHECKSUM_PARTIAL convention,
 * the kernel having checked every segment's checksum). Written into the TUN device as it is, such a packet fails the
 * kernel's checksum check and is lost, and with it the flow's throughput.
 *
 * Told apart by that field: equal to the folded, not inverted, pseudo-header sum, while the checksum over the whole
 * does not verify. The sum over the whole is computed only for packets whose field matches, which a complete checksum
 * does 1 time in 65536 (such a packet verifies, and is an ordinary one); a super-packet whose partial sum happens to
 * verify as it is (as rarely) is taken for an ordinary packet, which the kernel then accepts. IPv4 with options and
 * IPv6 with TCP right after the fixed header; anything else is -1. Reads only inside `p`.
 */
export const superPacketL4 = (p: Uint8Array): number => {
  const l4 = partialL4(p)
  return l4 >= 0 && !checksumOk(p, l4, PROTO_TCP) ? l4 : -1
}

/**
 * `superPacketL4` short of the checksum over the whole: the TCP header's offset when the checksum field holds the
 * pseudo-header sum, else -1. For callers that already know the whole does not verify.
 */
const partialL4 = (p: Uint8Array): number => {
  const length = p.length
  if (length === 0) return -1
  const version = p[0]! >>> 4
  let l4: number
  if (version === 4) {
    if (length < Ipv4.MIN_HEADER || Ipv4.totalLength(p) !== length || p[9] !== PROTO_TCP || Ipv4.isFragment(p)) {
      return -1
    }
    l4 = Ipv4.headerLength(p)
    if (l4 < Ipv4.MIN_HEADER) return -1
  } else if (version === 6) {
    if (length < Ipv6.HEADER || Ipv6.HEADER + Ipv6.payloadLength(p) !== length || p[6] !== PROTO_TCP) return -1
    l4 = Ipv6.HEADER
  } else {
    return -1
  }
  if (l4 + TCP_MIN_HEADER > length) return -1
  const tcpHeader = (p[l4 + 12]! >>> 4) << 2
  if (tcpHeader < TCP_MIN_HEADER || l4 + tcpHeader > length) return -1
  const field = (p[l4 + 16]! << 8) | p[l4 + 17]!
  return field === pseudo(p, l4, length - l4, PROTO_TCP) ? l4 : -1
}

/**
 * The virtio_net_hdr fields for writing super-packet `p` (its TCP header at `l4`, `superPacketL4`) into a TUN device
 * with offloads, set on `into`: NEEDS_CSUM over the TCP header and payload (the field already holds the pseudo-header
 * sum), and when the payload is longer than one segment of a `mtu`-sized packet, GSO TCPv4/TCPv6 with that segment
 * size (and the ECN bit when CWR is set, as tcp_gro_complete), so that the kernel segments it again wherever it is
 * forwarded to. Returns `into`.
 */
export const superPacketHeader = (
  p: Uint8Array,
  l4: number,
  mtu: number,
  into: VirtioNet.Header
): VirtioNet.Header => {
  const headerLength = l4 + ((p[l4 + 12]! >>> 4) << 2)
  const mss = mtu - headerLength
  const segmented = mss > 0 && p.length - headerLength > mss
  into.flags = VirtioNet.Flag.NeedsCsum
  into.gsoType = segmented
    ? (p[0]! >>> 4 === 6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4) |
      ((p[l4 + 13]! & TCP_CWR) !== 0 ? VirtioNet.GsoType.Ecn : 0)
    : VirtioNet.GsoType.None
  into.hdrLen = headerLength
  into.gsoSize = segmented ? mss : 0
  into.csumStart = l4
  into.csumOffset = VirtioNet.TCP_CSUM_OFFSET
  into.numBuffers = 0
  return into
}

/**
 * For a TUN device without offloads: every super-packet of `packets` (`superPacketL4`) cut again into segments that
 * fit `mtu`, each with its own complete TCP checksum, sequence number, IPv4 ID (the super-packet's + index, which
 * gives back the original IDs, GRO having merged only incrementing ones) and FIN/PSH only on the last, built in
 * `arena` (reset first; views valid until the next call with it). When `packets` holds no super-packet, returns 0 and
 * leaves `out` alone: the caller writes `packets` as they are. Otherwise `out` gets every packet in order, the other
 * ones as they are, and the result is the number of super-packets cut. A super-packet that cannot be cut (it cannot
 * happen to one that passed `superPacketL4`) goes out unchanged. Never throws.
 */
export const splitSuperPackets = (
  packets: ReadonlyArray<Uint8Array>,
  out: Array<Uint8Array>,
  arena: Arena.Arena,
  mtu: number
): number => {
  let first = 0
  let firstL4 = -1
  for (; first < packets.length; first++) {
    firstL4 = superPacketL4(packets[first]!)
    if (firstL4 >= 0) break
  }
  if (firstL4 < 0) return 0
  Arena.reset(arena)
  let cut = 0
  for (let i = 0; i < first; i++) out.push(packets[i]!)
  for (let i = first; i < packets.length; i++) {
    const p = packets[i]!
    const l4 = i === first ? firstL4 : superPacketL4(p)
    if (l4 < 0) {
      out.push(p)
      continue
    }
    if (Gso.segment(p, superPacketHeader(p, l4, mtu, superScratch), out, arena) < 0) out.push(p)
    else cut++
  }
  return cut
}

const sameBytes = (a: Uint8Array, b: Uint8Array, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false
  return true
}

const seqOf = (p: Uint8Array, l4: number): number =>
  ((p[l4 + 4]! << 24) | (p[l4 + 5]! << 16) | (p[l4 + 6]! << 8) | p[l4 + 7]!) >>> 0

/**
 * Whether candidate `p` has the same IP flow fields and ports as the group's first packet `h`, both with their
 * transport header at `l4` (the same IP version without options or extension headers, so the same offset) and of the
 * same protocol.
 */
const sameIpFlow = (h: Uint8Array, p: Uint8Array, l4: number): boolean => {
  if (l4 === Ipv4.MIN_HEADER) {
    // TOS, DF, TTL and protocol, addresses; the ID is checked by the caller.
    if (h[0] !== p[0] || h[1] !== p[1] || h[6] !== p[6] || h[8] !== p[8] || h[9] !== p[9]) return false
    if (!sameBytes(h, p, 12, 20)) return false
  } else {
    // Version, traffic class, flow label; next header and hop limit; addresses.
    if (!sameBytes(h, p, 0, 4) || h[6] !== p[6] || h[7] !== p[7]) return false
    if (!sameBytes(h, p, Ipv6.SRC_OFFSET, Ipv6.HEADER)) return false
  }
  // Source and destination ports, at the same place in TCP and UDP.
  return sameBytes(h, p, l4, l4 + 4)
}

/** `sameIpFlow`, then the TCP fields that must match. */
const sameTcpFlow = (h: Uint8Array, p: Uint8Array, l4: number): boolean => {
  if (!sameIpFlow(h, p, l4)) return false
  // Acknowledgment number, data offset, flags (FIN and PSH aside) and window, as tcp_gro_receive.
  if (!sameBytes(h, p, l4 + 8, l4 + 13)) return false
  if (((h[l4 + 13]! ^ p[l4 + 13]!) & ~ENDS_GROUP) !== 0) return false
  if (h[l4 + 14] !== p[l4 + 14] || h[l4 + 15] !== p[l4 + 15]) return false
  return sameBytes(h, p, l4 + TCP_MIN_HEADER, l4 + ((h[l4 + 12]! >>> 4) << 2))
}

/**
 * Coalesces a batch of inner packets (e.g. `decapBatch`'s output) into the packets to write to the TUN device, each
 * starting with its 12-byte virtio_net_hdr, appended to `out` in the input order. UDP datagrams are merged only with
 * `options.udp` (default: TCP only).
 *
 * A merged group is built in `arena` (reset first; views valid until the next call with it): the first packet's
 * headers with its IPv4 total length and header checksum or IPv6 payload length fixed, then every payload.
 * - TCP: FIN/PSH of the last segment, the pseudo-header sum in the TCP checksum field; its virtio header has
 *   NEEDS_CSUM, csum_start = IP header length, csum_offset 16, gso_type TCPv4/TCPv6, hdr_len = IP + TCP header
 *   length, gso_size = the first segment's payload length.
 * - UDP: the UDP length covering the header and every payload, and in the checksum field the pseudo-header sum over
 *   that length (not inverted: udp4_gro_complete's convention; __udp_gso_segment swaps that length for each
 *   datagram's in the sum, then completes it); its virtio header has NEEDS_CSUM (which UDP_L4 requires),
 *   csum_start = IP header length, csum_offset 6, gso_type UDP_L4, hdr_len = IP header length + 8, gso_size = the
 *   first datagram's payload length.
 *
 * Every other packet is passed through with an all-zero header: written into the `headroom` bytes in front of it when
 * `headroom >= 12` and its view has 12 bytes in front of it in its buffer (`decapBatch`'s views have the outer
 * header there: pass 20), else copied into `arena`. Those 12 bytes are overwritten; the packets' own bytes never are.
 *
 * Returns the number of input packets that went into super-packets. Never throws, never reads outside the packets.
 */
export const coalesce = (
  packets: ReadonlyArray<Uint8Array>,
  out: Array<Uint8Array>,
  arena: Arena.Arena,
  headroom: number,
  options: CoalesceOptions = TCP_ONLY
): number => {
  Arena.reset(arena)
  const udp = options.udp
  const mtu = options.mtu ?? DEFAULT_MTU
  let merged = 0
  // The open group: packets[start .. start + count), all of protocol `proto` with their L4 header at `l4`.
  let start = -1
  let count = 0
  let l4 = 0
  let proto = 0
  let headerLength = 0
  let gsoSize = 0
  let bytes = 0
  let nextSeq = 0
  let idRule = IdUnknown
  let headVerified = false
  let closed = false

  /** `checksumFailed`: the caller found the packet's TCP or UDP checksum wrong already (no second sum over it). */
  const emitOne = (p: Uint8Array, checksumFailed = false): void => {
    let framed: Uint8Array
    if (headroom >= HDR && p.byteOffset >= HDR) {
      framed = new Uint8Array(p.buffer, p.byteOffset - HDR, p.length + HDR)
    } else {
      framed = Arena.take(arena, 0, p.length + HDR)
      framed.set(p, HDR)
    }
    // A TCP super-packet coalesced by this host's GRO: its checksum field is partial, say so (superPacketL4).
    const l4 = checksumFailed ? partialL4(p) : superPacketL4(p)
    if (l4 < 0) VirtioNet.writePlain(framed, 0)
    else VirtioNet.write(framed, 0, superPacketHeader(p, l4, mtu, superScratch))
    out.push(framed)
  }

  const flush = (): void => {
    if (start < 0) return
    if (count === 1) emitOne(packets[start]!)
    else {
      out.push(build(packets, start, count, l4, proto, headerLength, gsoSize, bytes, arena))
      merged += count
    }
    start = -1
  }

  const open = (i: number, p: Uint8Array, at: number, verified: boolean): void => {
    start = i
    count = 1
    l4 = at
    proto = protoOf(p, at)
    headVerified = verified
    idRule = IdUnknown
    bytes = p.length
    if (proto === PROTO_UDP) {
      headerLength = at + UDP_HEADER
      gsoSize = p.length - headerLength
      closed = false
      return
    }
    headerLength = at + ((p[at + 12]! >>> 4) << 2)
    gsoSize = p.length - headerLength
    nextSeq = (seqOf(p, at) + gsoSize) >>> 0
    closed = (p[at + 13]! & ENDS_GROUP) !== 0
  }

  /** Whether `p` (a candidate at `at`, of the open group's kind) may join it, the checksums aside. */
  const fits = (head: Uint8Array, p: Uint8Array, at: number): boolean => {
    const payload = p.length - headerLength
    if (payload <= 0 || payload > gsoSize || bytes + payload > MAX_PACKET) return false
    if (proto === PROTO_UDP) {
      if (!sameIpFlow(head, p, at)) return false
      return at !== Ipv4.MIN_HEADER || Ipv4.id(p) === ((Ipv4.id(head) + count) & 0xffff)
    }
    if (seqOf(p, at) !== nextSeq || !sameTcpFlow(head, p, at)) return false
    if (at === Ipv4.MIN_HEADER) idRule = idRuleAfter(idRule, Ipv4.id(head), Ipv4.id(p), count, Ipv4.dontFragment(p))
    return idRule !== IdMismatch
  }

  for (let i = 0; i < packets.length; i++) {
    const p = packets[i]!
    const at = candidate(p, udp)
    if (at < 0) {
      flush()
      emitOne(p)
      continue
    }
    if (start >= 0 && !closed && at === l4 && protoOf(p, at) === proto) {
      const head = packets[start]!
      if (fits(head, p, at)) {
        if (!headVerified && !checksumOk(head, l4, proto)) {
          // The first packet is corrupt: it goes alone, and this one may start the next group.
          emitOne(head, true)
          start = -1
          if (checksumOk(p, at, proto)) open(i, p, at, true)
          else emitOne(p, true)
          continue
        }
        headVerified = true
        if (!checksumOk(p, at, proto)) {
          flush()
          emitOne(p, true)
          continue
        }
        const payload = p.length - headerLength
        count++
        bytes += payload
        if (proto === PROTO_UDP) {
          closed = payload < gsoSize || count >= UDP_MAX_COUNT
        } else {
          nextSeq = (nextSeq + payload) >>> 0
          closed = payload < gsoSize || (p[at + 13]! & ENDS_GROUP) !== 0
        }
        continue
      }
    }
    flush()
    open(i, p, at, false)
  }
  flush()
  return merged
}

/** The super-packet of packets[start .. start + count), with its virtio_net_hdr in front. */
const build = (
  packets: ReadonlyArray<Uint8Array>,
  start: number,
  count: number,
  l4: number,
  proto: number,
  headerLength: number,
  gsoSize: number,
  bytes: number,
  arena: Arena.Arena
): Uint8Array => {
  const head = packets[start]!
  const last = packets[start + count - 1]!
  const framed = Arena.take(arena, 0, HDR + bytes)
  const v6 = l4 === Ipv6.HEADER
  const udp = proto === PROTO_UDP
  VirtioNet.writeFields(
    framed,
    0,
    VirtioNet.Flag.NeedsCsum,
    udp ? VirtioNet.GsoType.UdpL4 : v6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4,
    headerLength,
    gsoSize,
    l4,
    udp ? UDP_CSUM_OFFSET : VirtioNet.TCP_CSUM_OFFSET
  )
  framed.set(head.subarray(0, headerLength), HDR)
  let o = HDR + headerLength
  for (let i = start; i < start + count; i++) {
    const p = packets[i]!
    framed.set(p.subarray(headerLength), o)
    o += p.length - headerLength
  }
  const ip = framed.subarray(HDR)
  if (v6) {
    Ipv6.setPayloadLength(ip, bytes - Ipv6.HEADER)
  } else {
    Ipv4.setTotalLength(ip, bytes)
    Ipv4.computeChecksum(ip)
  }
  // CHECKSUM_PARTIAL convention (the kernel's tcp_v4_send_check, udp4_gro_complete): the field holds the folded
  // pseudo-header sum, and whoever completes the checksum sums from csum_start to the end and stores the complement.
  const partial = pseudo(ip, l4, bytes - l4, proto)
  if (udp) {
    // __udp_gso_segment takes uh->len out of the partial sum and each datagram's length in: both must agree.
    ip[l4 + 4] = (bytes - l4) >>> 8
    ip[l4 + 5] = bytes - l4
    ip[l4 + 6] = partial >>> 8
    ip[l4 + 7] = partial
  } else {
    ip[l4 + 13] = ip[l4 + 13]! | (last[l4 + 13]! & ENDS_GROUP)
    ip[l4 + 16] = partial >>> 8
    ip[l4 + 17] = partial
  }
  return framed
}
