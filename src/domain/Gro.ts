/**
 * Software GRO for the TUN device: runs of consecutive in-order TCP segments of one flow in a received batch become
 * one super-packet written with a virtio_net_hdr (NEEDS_CSUM, gso_type TCPv4/TCPv6), so the kernel takes a whole
 * group in one write() and one trip through its stack. Pure, synchronous; one call per batch.
 *
 * What may be merged follows the kernel's own GRO (inet_gro_receive, ipv6_gro_receive, tcp_gro_receive, Linux 6.x):
 * - IPv4 without options and not a fragment (only DF may be set), header checksum right, total length = bytes;
 *   same addresses, TOS (so an ECN CE mark ends a group), TTL and DF; IDs incrementing by one per segment, or, with
 *   DF set, all equal (an atomic datagram's ID means nothing, RFC 6864 4.1);
 * - IPv6 with TCP as the next header (no extension headers), payload length = bytes; same addresses, traffic class,
 *   flow label and hop limit;
 * - TCP: same ports, data offset, acknowledgment number, window and option bytes (the timestamp too: the kernel
 *   compares the options word by word, and segments sent in one burst share their timestamp); every flag equal
 *   (ECE too) except FIN and PSH, which end a group and may be on its last segment; SYN, RST, URG never merged; the
 *   sequence number continues the previous segment; a payload of at least one byte (pure ACKs are not merged);
 * - every segment but the last carries exactly gso_size (the first segment's payload) bytes, the last at most that;
 * - the super-packet is at most 65535 bytes;
 * - every merged segment's TCP checksum was verified: a NEEDS_CSUM write is not verified again by the kernel, so a
 *   corrupt segment is passed through alone and unchanged, for the kernel to drop.
 * Two choices are stricter than the kernel: a segment with CWR is never merged (the kernel lets it start a group, whose
 * super-packet then needs the GSO ECN bit), and only runs of consecutive packets in the batch are merged (the kernel
 * keeps several flows open at once).
 *
 * Packets that are not merged get an all-zero header (flags 0, GSO none): the kernel verifies their checksums as for
 * any received packet. DATA_VALID is not used: the kernel ignores it on TUN writes (measured).
 */
import * as Arena from "./Arena.js"
import * as Checksum from "./Checksum.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"
import * as VirtioNet from "./VirtioNet.js"

const PROTO_TCP = 6
const TCP_MIN_HEADER = 20
const TCP_FIN = 0x01
const TCP_SYN = 0x02
const TCP_RST = 0x04
const TCP_PSH = 0x08
const TCP_URG = 0x20
const TCP_CWR = 0x80
const NEVER_MERGED = TCP_SYN | TCP_RST | TCP_URG | TCP_CWR
const ENDS_GROUP = TCP_FIN | TCP_PSH
const MAX_PACKET = 0xffff
const HDR = VirtioNet.HEADER_SIZE

/** IPv4 ID rule of an open group, decided by its second segment. */
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

/**
 * Offset of the TCP header when `p` may join a group (the checks that need no checksum pass), else -1.
 * Reads only inside `p`.
 */
const candidate = (p: Uint8Array): number => {
  const length = p.length
  if (length === 0) return -1
  const version = p[0]! >>> 4
  let l4: number
  if (version === 4) {
    // 0x45: version 4 without options, as inet_gro_receive requires.
    if (length < Ipv4.MIN_HEADER + TCP_MIN_HEADER || p[0] !== 0x45) return -1
    if (Ipv4.totalLength(p) !== length || Ipv4.protocol(p) !== PROTO_TCP) return -1
    // Flags and fragment offset: DF alone, or nothing (the reserved bit, MF and an offset all flush in Linux).
    if ((p[6]! & 0xbf) !== 0 || p[7] !== 0) return -1
    if (!Ipv4.verifyChecksum(p)) return -1
    l4 = Ipv4.MIN_HEADER
  } else if (version === 6) {
    if (length < Ipv6.HEADER + TCP_MIN_HEADER) return -1
    if (Ipv6.HEADER + Ipv6.payloadLength(p) !== length || Ipv6.nextHeader(p) !== PROTO_TCP) return -1
    l4 = Ipv6.HEADER
  } else {
    return -1
  }
  const tcpHeader = (p[l4 + 12]! >>> 4) << 2
  if (tcpHeader < TCP_MIN_HEADER || l4 + tcpHeader >= length) return -1
  if ((p[l4 + 13]! & NEVER_MERGED) !== 0) return -1
  return l4
}

/** Folded pseudo-header sum of the segment whose TCP header is at `l4` (RFC 9293 3.1, RFC 8200 8.1). */
const pseudo = (p: Uint8Array, l4: number, tcpLength: number): number =>
  l4 === Ipv6.HEADER
    ? Checksum.pseudoHeader6(p, Ipv6.SRC_OFFSET, tcpLength, PROTO_TCP)
    : Checksum.pseudoHeader4(Ipv4.src(p), Ipv4.dst(p), PROTO_TCP, tcpLength)

/** True when the TCP checksum of a candidate segment is right. */
const tcpChecksumOk = (p: Uint8Array, l4: number): boolean => {
  const tcpLength = p.length - l4
  return Checksum.sum(p, l4, tcpLength, pseudo(p, l4, tcpLength)) === 0xffff
}

const sameBytes = (a: Uint8Array, b: Uint8Array, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false
  return true
}

const seqOf = (p: Uint8Array, l4: number): number =>
  ((p[l4 + 4]! << 24) | (p[l4 + 5]! << 16) | (p[l4 + 6]! << 8) | p[l4 + 7]!) >>> 0

/**
 * Whether candidate `p` has the same flow and the same merge-relevant fields as the group's first segment `h`, both
 * with their TCP header at `l4` (the same IP version without options or extension headers, so the same offset).
 */
const sameFlow = (h: Uint8Array, p: Uint8Array, l4: number): boolean => {
  if (l4 === Ipv4.MIN_HEADER) {
    // TOS, DF, TTL and protocol, addresses; the ID is checked by the caller.
    if (h[0] !== p[0] || h[1] !== p[1] || h[6] !== p[6] || h[8] !== p[8] || h[9] !== p[9]) return false
    if (!sameBytes(h, p, 12, 20)) return false
  } else {
    // Version, traffic class, flow label; next header and hop limit; addresses.
    if (!sameBytes(h, p, 0, 4) || h[6] !== p[6] || h[7] !== p[7]) return false
    if (!sameBytes(h, p, Ipv6.SRC_OFFSET, Ipv6.HEADER)) return false
  }
  // Ports; then acknowledgment number, data offset, flags (FIN and PSH aside) and window, as tcp_gro_receive.
  if (!sameBytes(h, p, l4, l4 + 4) || !sameBytes(h, p, l4 + 8, l4 + 13)) return false
  if (((h[l4 + 13]! ^ p[l4 + 13]!) & ~ENDS_GROUP) !== 0) return false
  if (h[l4 + 14] !== p[l4 + 14] || h[l4 + 15] !== p[l4 + 15]) return false
  return sameBytes(h, p, l4 + TCP_MIN_HEADER, l4 + ((h[l4 + 12]! >>> 4) << 2))
}

/**
 * Coalesces a batch of inner packets (e.g. `decapBatch`'s output) into the packets to write to the TUN device, each
 * starting with its 12-byte virtio_net_hdr, appended to `out` in the input order.
 *
 * A merged group is built in `arena` (reset first; views valid until the next call with it): the first segment's
 * headers with its IPv4 total length and header checksum or IPv6 payload length fixed, FIN/PSH of the last segment,
 * the pseudo-header sum in the TCP checksum field, then every payload; its header has NEEDS_CSUM, csum_start = IP
 * header length, csum_offset 16, gso_type TCPv4/TCPv6, hdr_len = IP + TCP header length, gso_size = the first
 * segment's payload length.
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
  headroom: number
): number => {
  Arena.reset(arena)
  let merged = 0
  // The open group: packets[start .. start + count), all with their TCP header at `l4`.
  let start = -1
  let count = 0
  let l4 = 0
  let headerLength = 0
  let gsoSize = 0
  let bytes = 0
  let nextSeq = 0
  let idRule = IdUnknown
  let headVerified = false
  let closed = false

  const emitOne = (p: Uint8Array): void => {
    if (headroom >= HDR && p.byteOffset >= HDR) {
      const framed = new Uint8Array(p.buffer, p.byteOffset - HDR, p.length + HDR)
      VirtioNet.writePlain(framed, 0)
      out.push(framed)
      return
    }
    const framed = Arena.take(arena, 0, p.length + HDR)
    VirtioNet.writePlain(framed, 0)
    framed.set(p, HDR)
    out.push(framed)
  }

  const flush = (): void => {
    if (start < 0) return
    if (count === 1) emitOne(packets[start]!)
    else {
      out.push(build(packets, start, count, l4, headerLength, gsoSize, bytes, arena))
      merged += count
    }
    start = -1
  }

  const open = (i: number, p: Uint8Array, at: number, verified: boolean): void => {
    start = i
    count = 1
    l4 = at
    headerLength = at + ((p[at + 12]! >>> 4) << 2)
    gsoSize = p.length - headerLength
    bytes = p.length
    nextSeq = (seqOf(p, at) + gsoSize) >>> 0
    idRule = IdUnknown
    headVerified = verified
    closed = (p[at + 13]! & ENDS_GROUP) !== 0
  }

  for (let i = 0; i < packets.length; i++) {
    const p = packets[i]!
    const at = candidate(p)
    if (at < 0) {
      flush()
      emitOne(p)
      continue
    }
    if (start >= 0 && !closed && at === l4) {
      const head = packets[start]!
      const payload = p.length - headerLength
      let rule = idRule
      if (
        payload > 0 && payload <= gsoSize && bytes + payload <= MAX_PACKET && seqOf(p, at) === nextSeq &&
        sameFlow(head, p, at)
      ) {
        if (at === Ipv4.MIN_HEADER) rule = idRuleAfter(rule, Ipv4.id(head), Ipv4.id(p), count, Ipv4.dontFragment(p))
        if (rule !== IdMismatch) {
          if (!headVerified && !tcpChecksumOk(head, l4)) {
            // The first segment is corrupt: it goes alone, and this one may start the next group.
            emitOne(head)
            start = -1
            if (tcpChecksumOk(p, at)) open(i, p, at, true)
            else emitOne(p)
            continue
          }
          headVerified = true
          if (!tcpChecksumOk(p, at)) {
            flush()
            emitOne(p)
            continue
          }
          count++
          bytes += payload
          nextSeq = (nextSeq + payload) >>> 0
          idRule = rule
          closed = payload < gsoSize || (p[at + 13]! & ENDS_GROUP) !== 0
          continue
        }
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
  headerLength: number,
  gsoSize: number,
  bytes: number,
  arena: Arena.Arena
): Uint8Array => {
  const head = packets[start]!
  const last = packets[start + count - 1]!
  const framed = Arena.take(arena, 0, HDR + bytes)
  const v6 = l4 === Ipv6.HEADER
  VirtioNet.writeFields(
    framed,
    0,
    VirtioNet.Flag.NeedsCsum,
    v6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4,
    headerLength,
    gsoSize,
    l4,
    VirtioNet.TCP_CSUM_OFFSET
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
  ip[l4 + 13] = ip[l4 + 13]! | (last[l4 + 13]! & ENDS_GROUP)
  // CHECKSUM_PARTIAL convention (the kernel's tcp_v4_send_check): the field holds the folded pseudo-header sum, and
  // whoever completes the checksum sums from csum_start to the end and stores the complement.
  const partial = pseudo(ip, l4, bytes - l4)
  ip[l4 + 16] = partial >>> 8
  ip[l4 + 17] = partial
  return framed
}
