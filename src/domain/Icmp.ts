/**
 * The ICMP and ICMPv6 errors the daemon sends back into the TUN device, and the rules for when it may not send one.
 * Errors are rare and rate-limited, so the builders may allocate; the predicates run before a token is taken.
 */
import * as Checksum from "./Checksum.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"

/** RFC 1812 4.3.2.3: an ICMP error, IP header included, should not exceed 576 bytes. */
export const IPV4_REPLY_MAX = 576
/** RFC 4443 2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU. */
export const IPV6_REPLY_MAX = Ipv6.MIN_MTU

export const ICMP_HEADER = 8

export const Icmp4Type = { EchoReply: 0, DestUnreachable: 3, SourceQuench: 4, Redirect: 5, Echo: 8 } as const
export const Icmp4Code = { HostUnreachable: 1, FragmentationNeeded: 4 } as const
export const Icmp6Type = { DestUnreachable: 1, PacketTooBig: 2, TimeExceeded: 3, ParamProblem: 4 } as const
export const Icmp6Code = { NoRoute: 0 } as const

/** RFC 1812 4.3.2.5: errors other than Source Quench go out with precedence 6 (Internetwork Control). */
const ERROR_TOS = 0xc0

/** RFC 792 / RFC 1812 4.3.2.7: Destination Unreachable, Source Quench, Redirect, Time Exceeded, Parameter Problem. */
export const isIcmp4Error = (type: number): boolean =>
  type === 3 || type === 4 || type === 5 || type === 11 || type === 12

/** RFC 4443 2.1: types 0..127 are error messages. */
export const isIcmp6Error = (type: number): boolean => type < 128

/** RFC 1812 4.3.2.7: a source that names no single host (0/8, loopback, multicast, class E and broadcast). */
const isBadSource4 = (addr: number): boolean =>
  Ipv4.isThisNetwork(addr) || Ipv4.isLoopback(addr) || Ipv4.isMulticast(addr) || addr >>> 28 === 0xf

/**
 * May an ICMP error be sent about this IPv4 packet (RFC 1812 4.3.2.7)? Not about an ICMP error, a non-first fragment,
 * a packet from an address that names no single host, or one sent to multicast or broadcast. Undecidable (too short
 * to show the ICMP type) counts as no. Safe on any bytes.
 */
export const shouldReply4 = (p: Uint8Array): boolean => {
  if (p.length < Ipv4.MIN_HEADER || Ipv4.version(p) !== 4) return false
  if (Ipv4.fragmentOffset(p) !== 0) return false
  const src = Ipv4.src(p)
  if (isBadSource4(src)) return false
  const dst = Ipv4.dst(p)
  if (Ipv4.isMulticast(dst) || Ipv4.isLimitedBroadcast(dst)) return false
  if (Ipv4.protocol(p) === Ipv4.PROTO_ICMP) {
    const hl = Ipv4.headerLength(p)
    if (hl < Ipv4.MIN_HEADER || hl >= p.length) return false
    if (isIcmp4Error(p[hl]!)) return false
  }
  return true
}

/** Extension header chains longer than this are not followed (they cannot be an ICMPv6 error we could tell). */
const MAX_EXTENSIONS = 8

/**
 * Is this IPv6 packet an ICMPv6 error message, or can that not be told because the header chain is cut short?
 * Follows hop-by-hop, routing, destination options, AH and fragment headers; the upper layer of a non-first
 * fragment is not visible and counts as not an error.
 */
const isOrMaybeIcmp6Error = (p: Uint8Array): boolean => {
  let next = Ipv6.nextHeader(p)
  let off = Ipv6.HEADER
  for (let n = 0; n <= MAX_EXTENSIONS; n++) {
    if (next === Ipv6.NEXT_ICMPV6) return off >= p.length || isIcmp6Error(p[off]!)
    if (next === Ipv6.NEXT_HOP_BY_HOP || next === Ipv6.NEXT_ROUTING || next === Ipv6.NEXT_DEST_OPTS) {
      if (off + 2 > p.length) return true
      next = p[off]!
      off += (p[off + 1]! + 1) << 3
    } else if (next === Ipv6.NEXT_AH) {
      if (off + 2 > p.length) return true
      next = p[off]!
      off += (p[off + 1]! + 2) << 2
    } else if (next === Ipv6.NEXT_FRAGMENT) {
      if (off + 8 > p.length) return true
      if ((((p[off + 2]! << 8) | p[off + 3]!) & 0xfff8) !== 0) return false
      next = p[off]!
      off += 8
    } else {
      return false
    }
  }
  return true
}

/**
 * May an ICMPv6 error be sent about this packet (RFC 4443 2.4(e))? Not about an ICMPv6 error, a packet from the
 * unspecified, loopback or a multicast address, or one sent to a multicast address, except that Packet Too Big
 * (`packetTooBig`) is sent for multicast destinations too (2.4(e.3)). Safe on any bytes.
 */
export const shouldReply6 = (p: Uint8Array, packetTooBig: boolean): boolean => {
  if (p.length < Ipv6.HEADER || Ipv6.version(p) !== 6) return false
  const s = Ipv6.SRC_OFFSET
  if (Ipv6.isUnspecifiedAt(p, s) || Ipv6.isLoopbackAt(p, s) || Ipv6.isMulticastAt(p, s)) return false
  if (!packetTooBig && Ipv6.isMulticastAt(p, Ipv6.DST_OFFSET)) return false
  return !isOrMaybeIcmp6Error(p)
}

const target = (out: Uint8Array | undefined, length: number): Uint8Array =>
  out !== undefined && out.length >= length ? out.subarray(0, length) : new Uint8Array(length)

/**
 * ICMP Destination Unreachable about `offending` (a checked IPv4 packet of at least 20 bytes): IPv4 header from
 * `src` to the offending source with DF clear, then type 3, `code`, the next-hop MTU in bytes 6-7 (RFC 1191 4,
 * 0 for other codes) and as much of the offending packet as fits in 576 bytes. Written into `out` when it is big
 * enough (the result is then a view of it), else into a new array.
 */
export const destUnreachable4 = (
  offending: Uint8Array,
  code: number,
  nextHopMtu: number,
  src: number,
  ttl: number,
  out?: Uint8Array
): Uint8Array => {
  const quote = Math.min(offending.length, IPV4_REPLY_MAX - Ipv4.MIN_HEADER - ICMP_HEADER)
  const length = Ipv4.MIN_HEADER + ICMP_HEADER + quote
  const r = target(out, length)
  Ipv4.setVersionIhl(r, 5)
  Ipv4.setTos(r, ERROR_TOS)
  Ipv4.setTotalLength(r, length)
  Ipv4.setId(r, 0)
  Ipv4.setFragment(r, false, false, 0)
  Ipv4.setTtl(r, ttl)
  Ipv4.setProtocol(r, Ipv4.PROTO_ICMP)
  Ipv4.setSrc(r, src)
  Ipv4.setDst(r, Ipv4.src(offending))
  Ipv4.computeChecksum(r)
  const i = Ipv4.MIN_HEADER
  r[i] = Icmp4Type.DestUnreachable
  r[i + 1] = code
  r[i + 2] = 0
  r[i + 3] = 0
  r[i + 4] = 0
  r[i + 5] = 0
  r[i + 6] = nextHopMtu >>> 8
  r[i + 7] = nextHopMtu
  r.set(offending.subarray(0, quote), i + ICMP_HEADER)
  const check = Checksum.checksum(r, i, ICMP_HEADER + quote)
  r[i + 2] = check >>> 8
  r[i + 3] = check
  return r
}

/** Type 3 code 1: no remote endpoint for this destination. */
export const hostUnreachable4 = (offending: Uint8Array, src: number, ttl: number, out?: Uint8Array): Uint8Array =>
  destUnreachable4(offending, Icmp4Code.HostUnreachable, 0, src, ttl, out)

/** Type 3 code 4 with the MTU the sender must fit in (RFC 1191). */
export const fragmentationNeeded4 = (
  offending: Uint8Array,
  mtu: number,
  src: number,
  ttl: number,
  out?: Uint8Array
): Uint8Array => destUnreachable4(offending, Icmp4Code.FragmentationNeeded, mtu, src, ttl, out)

/**
 * An ICMPv6 error about `offending` (a checked IPv6 packet of at least 40 bytes): IPv6 header from the 16 bytes at
 * `srcOffset` in `src` to the offending source, then `type`, `code`, the 32-bit `param` (the MTU of Packet Too Big,
 * RFC 4443 3.2; 0 = unused) and as much of the offending packet as fits in 1280 bytes, with the checksum over the
 * pseudo-header (RFC 4443 2.3).
 */
export const error6 = (
  offending: Uint8Array,
  type: number,
  code: number,
  param: number,
  src: Uint8Array,
  srcOffset: number,
  hopLimit: number,
  out?: Uint8Array
): Uint8Array => {
  const quote = Math.min(offending.length, IPV6_REPLY_MAX - Ipv6.HEADER - ICMP_HEADER)
  const length = Ipv6.HEADER + ICMP_HEADER + quote
  const r = target(out, length)
  Ipv6.setFirstWord(r, 0, 0)
  Ipv6.setPayloadLength(r, ICMP_HEADER + quote)
  Ipv6.setNextHeader(r, Ipv6.NEXT_ICMPV6)
  Ipv6.setHopLimit(r, hopLimit)
  r.set(src.subarray(srcOffset, srcOffset + 16), Ipv6.SRC_OFFSET)
  r.set(offending.subarray(Ipv6.SRC_OFFSET, Ipv6.SRC_OFFSET + 16), Ipv6.DST_OFFSET)
  const i = Ipv6.HEADER
  r[i] = type
  r[i + 1] = code
  r[i + 2] = 0
  r[i + 3] = 0
  r[i + 4] = param >>> 24
  r[i + 5] = param >>> 16
  r[i + 6] = param >>> 8
  r[i + 7] = param
  r.set(offending.subarray(0, quote), i + ICMP_HEADER)
  const pseudo = Checksum.pseudoHeader6(r, Ipv6.SRC_OFFSET, ICMP_HEADER + quote, Ipv6.NEXT_ICMPV6)
  const check = Checksum.checksum(r, i, ICMP_HEADER + quote, pseudo)
  r[i + 2] = check >>> 8
  r[i + 3] = check
  return r
}

/** Destination Unreachable code 0: no route (no remote endpoint) for this destination. */
export const noRoute6 = (
  offending: Uint8Array,
  src: Uint8Array,
  srcOffset: number,
  hopLimit: number,
  out?: Uint8Array
): Uint8Array => error6(offending, Icmp6Type.DestUnreachable, Icmp6Code.NoRoute, 0, src, srcOffset, hopLimit, out)

/** Packet Too Big with the MTU the sender must fit in. */
export const packetTooBig6 = (
  offending: Uint8Array,
  mtu: number,
  src: Uint8Array,
  srcOffset: number,
  hopLimit: number,
  out?: Uint8Array
): Uint8Array => error6(offending, Icmp6Type.PacketTooBig, 0, mtu, src, srcOffset, hopLimit, out)
