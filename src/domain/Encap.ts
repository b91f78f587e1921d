/**
 * Encapsulation (TUN -> network), behaviour.md "Encapsulation" steps 1-7.
 * Pure, synchronous, allocation-light: one call per chunk.
 */
import { Drop } from "./Drops.js"
import * as Icmp from "./Icmp.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"
import type { RateLimiter } from "./RateLimit.js"
import { take } from "./RateLimit.js"

/** Bytes of writable headroom the TUN layer leaves before every packet it hands out. */
export const HEADROOM = 20

export interface EncapContext {
  readonly v4: boolean
  readonly v6: boolean
  /** Outer TTL 1..255, or 0 for "inherit" (copy the inner TTL / hop limit). */
  readonly ttl: number
  /** `-l` as a u32 (network order value, a.b.c.d = a<<24|...>>>0), or 0 = let the kernel choose. */
  readonly local: number
  /** Remote endpoint for an inner packet (u32), or 0 when there is none (-> ICMP unreachable). */
  readonly remoteOf: (inner: Uint8Array, version: 4 | 6) => number
  /** Largest outer packet (bytes) known to pass to that remote; tunnel MTU + 20 when nothing was learned. */
  readonly pathMtuOf: (remote: number) => number
  /** The tunnel device MTU (default 1480), carried in ICMP errors when no smaller path MTU is known. */
  readonly tunnelMtu: number
  /** ICMP error sources. 0 / null = none known. */
  readonly tunAddr4: number
  readonly tunAddr6: Uint8Array | null
  /** Is this IPv4 address one of this host's own (for the martian-source exception)? */
  readonly isLocal4: (addr: number) => boolean
  /** Token bucket for the ICMP errors, shared by the whole daemon. */
  readonly icmpLimiter: RateLimiter
  /** Monotonic milliseconds, read once per chunk. */
  readonly nowMs: number
  /**
   * Identification for the next IPv4 packet this daemon fragments itself (4in4 without DF, or small 6in4, over a
   * path MTU below the packet size): a fresh 16-bit value per call (RFC 791 / RFC 6864: all fragments of one packet
   * share it, and it must not repeat while fragments of the previous use may still be in flight). Called only when
   * fragmenting. 0 is replaced by 1: the kernel picks its own ID for an IP_HDRINCL packet whose ID is zero, which
   * would give every fragment a different one.
   */
  readonly nextFragmentId: () => number
}

export interface EncapOut {
  /**
   * Outer IPv4 packets to send: views over each packet and its headroom, or new arrays for a packet without headroom
   * and for the fragments of a packet the daemon fragments itself.
   */
  readonly frames: Array<Uint8Array>
  /** ICMP / ICMPv6 errors to write back into the TUN device (copies, owned by the caller after return). */
  readonly replies: Array<Uint8Array>
  /** Drop counts by `Drop` reason, added to. */
  readonly drops: Uint32Array
}

const SENT = -1
const IPV4_HEADER = Ipv4.MIN_HEADER
/** RFC 791: every IPv4 link carries 68-byte packets, so a path MTU below that is not believed. */
const MIN_PATH_MTU = 68
const MAX_PACKET = 0xffff
/** TTL of the ICMP errors when the outer TTL is inherited: the kernel's default (net.ipv4.ip_default_ttl). */
const DEFAULT_ICMP_TTL = 64

/**
 * Encapsulates a batch of packets read from the TUN device (behaviour.md "Encapsulation"). Outer packets go to
 * `out.frames` (in place in each packet's headroom when it has `HEADROOM` bytes in front of it, else copied),
 * ICMP errors to `out.replies`, and every dropped packet is counted in `out.drops`. Never throws.
 */
export const encapBatch = (packets: ReadonlyArray<Uint8Array>, ctx: EncapContext, out: EncapOut): void => {
  const drops = out.drops
  for (let i = 0; i < packets.length; i++) {
    const verdict = encapOne(packets[i]!, ctx, out)
    if (verdict !== SENT) drops[verdict]++
  }
}

/** SENT, or the drop reason. */
const encapOne = (p: Uint8Array, ctx: EncapContext, out: EncapOut): number => {
  const length = p.length
  if (length === 0) return Drop.EncapTruncated
  const version = p[0]! >>> 4
  let tos: number
  let innerTtl: number
  let df: boolean
  let proto: number
  if (version === 4) {
    if (!ctx.v4) return Drop.EncapModeDisabled
    if (length < IPV4_HEADER || Ipv4.totalLength(p) !== length) return Drop.EncapTruncated
    const hl = Ipv4.headerLength(p)
    if (hl < IPV4_HEADER || hl > length) return Drop.EncapBadHeader
    if (!Ipv4.verifyChecksum(p)) return Drop.EncapBadChecksum
    tos = Ipv4.tos(p)
    innerTtl = Ipv4.ttl(p)
    df = Ipv4.dontFragment(p)
    proto = Ipv4.PROTO_IPIP
  } else if (version === 6) {
    if (!ctx.v6) return Drop.EncapModeDisabled
    if (length < Ipv6.HEADER || Ipv6.HEADER + Ipv6.payloadLength(p) !== length) return Drop.EncapTruncated
    tos = Ipv6.trafficClass(p)
    innerTtl = Ipv6.hopLimit(p)
    // RFC 4213 3.2.1: with a static tunnel MTU the outer packet may be fragmented on the way.
    df = false
    proto = Ipv4.PROTO_IPV6
  } else {
    return Drop.EncapBadVersion
  }
  // The kernel decremented the TTL / hop limit when it routed the packet into the TUN device (like ipip and sit).
  if (innerTtl === 0) return Drop.EncapTtlZero

  const remote = ctx.remoteOf(p, version) >>> 0
  if (remote === 0) {
    if (version === 4) reply4(p, Icmp.Icmp4Code.HostUnreachable, 0, ctx, out)
    else reply6(p, Icmp.Icmp6Type.DestUnreachable, Icmp.Icmp6Code.NoRoute, 0, ctx, out)
    return Drop.EncapNoRoute
  }
  // RFC 2003 4: a packet whose outer destination is its own source would loop through the tunnel.
  if (version === 4 && remote === Ipv4.src(p)) return Drop.EncapLoop

  // DSCP copied; ECN copied except CE, sent as ECT(0) as the kernel's own tunnels do (INET_ECN_encapsulate, the
  // RFC 3168 9.1.1 full-functionality option). Decapsulation per RFC 6040 4.2 leaves an inner CE as it is.
  const outerTos = (tos & 3) === Ipv4.Ecn.Ce ? (tos & 0xfc) | Ipv4.Ecn.Ect0 : tos
  const outerTtl = ctx.ttl === 0 ? innerTtl : ctx.ttl
  const total = length + IPV4_HEADER
  const pathMtu = Math.min(MAX_PACKET, Math.max(MIN_PATH_MTU, ctx.pathMtuOf(remote)))

  if (total > pathMtu) {
    const innerMtu = pathMtu - IPV4_HEADER
    if (version === 4) {
      if (df) {
        reply4(p, Icmp.Icmp4Code.FragmentationNeeded, innerMtu, ctx, out)
        return Drop.EncapTooBig
      }
    } else if (innerMtu >= Ipv6.MIN_MTU || length > Ipv6.MIN_MTU) {
      reply6(p, Icmp.Icmp6Type.PacketTooBig, 0, Math.max(Ipv6.MIN_MTU, innerMtu), ctx, out)
      return Drop.EncapTooBig
    }
    // IPv4 without DF, or (RFC 4213 3.2) an IPv6 packet of at most 1280 bytes over a smaller path: IPv6 promises
    // 1280 bytes, so the outer packet is fragmented instead.
    fragmentOuter(p, outerTos, outerTtl, proto, ctx.local, remote, pathMtu, ctx.nextFragmentId(), out.frames)
    return SENT
  }

  let frame: Uint8Array
  if (p.byteOffset >= HEADROOM) {
    frame = new Uint8Array(p.buffer, p.byteOffset - HEADROOM, total)
  } else {
    frame = new Uint8Array(total)
    frame.set(p, HEADROOM)
  }
  writeOuter(frame, outerTos, total, df, 0, false, 0, outerTtl, proto, ctx.local, remote)
  out.frames.push(frame)
  return SENT
}

/** The 20-byte outer header at the start of `f`, checksum included (the kernel redoes it; test underlays do not). */
const writeOuter = (
  f: Uint8Array,
  tos: number,
  total: number,
  df: boolean,
  id: number,
  mf: boolean,
  offset8: number,
  ttl: number,
  proto: number,
  src: number,
  dst: number
): void => {
  Ipv4.setVersionIhl(f, 5)
  Ipv4.setTos(f, tos)
  Ipv4.setTotalLength(f, total)
  Ipv4.setId(f, id)
  Ipv4.setFragment(f, df, mf, offset8)
  Ipv4.setTtl(f, ttl)
  Ipv4.setProtocol(f, proto)
  Ipv4.setSrc(f, src)
  Ipv4.setDst(f, dst)
  Ipv4.computeChecksum(f)
}

/**
 * RFC 791 fragmentation of the outer packet whose payload is `p`: every fragment but the last carries a multiple of
 * 8 bytes, all share one nonzero ID.
 */
const fragmentOuter = (
  p: Uint8Array,
  tos: number,
  ttl: number,
  proto: number,
  src: number,
  dst: number,
  pathMtu: number,
  rawId: number,
  frames: Array<Uint8Array>
): void => {
  const id = (rawId & 0xffff) === 0 ? 1 : rawId & 0xffff
  const chunk = (pathMtu - IPV4_HEADER) & ~7
  for (let off = 0; off < p.length; off += chunk) {
    const size = Math.min(chunk, p.length - off)
    const f = new Uint8Array(IPV4_HEADER + size)
    writeOuter(f, tos, IPV4_HEADER + size, false, id, off + size < p.length, off >>> 3, ttl, proto, src, dst)
    f.set(p.subarray(off, off + size), IPV4_HEADER)
    frames.push(f)
  }
}

const icmpTtl = (ctx: EncapContext): number => (ctx.ttl === 0 ? DEFAULT_ICMP_TTL : ctx.ttl)

/**
 * The source of an IPv4 error (behaviour.md "ICMP the daemon sends"): the tunnel's own address, else `-l`, else the
 * offending destination. When the offending packet came from this host, the kernel would drop an error from a local
 * address arriving on the TUN as a martian source, so the offending destination is used instead.
 */
const icmpSource4 = (p: Uint8Array, ctx: EncapContext): number => {
  const src = Ipv4.src(p)
  if ((ctx.tunAddr4 !== 0 && src === ctx.tunAddr4 >>> 0) || ctx.isLocal4(src)) return Ipv4.dst(p)
  if (ctx.tunAddr4 !== 0) return ctx.tunAddr4 >>> 0
  if (ctx.local !== 0) return ctx.local >>> 0
  return Ipv4.dst(p)
}

const reply4 = (p: Uint8Array, code: number, mtu: number, ctx: EncapContext, out: EncapOut): void => {
  if (!Icmp.shouldReply4(p)) return
  const src = icmpSource4(p, ctx)
  if (src === 0) return
  if (!take(ctx.icmpLimiter, ctx.nowMs)) {
    out.drops[Drop.IcmpRateLimited]++
    return
  }
  out.replies.push(Icmp.destUnreachable4(p, code, mtu, src, icmpTtl(ctx)))
}

/**
 * The source of an ICMPv6 error: the tunnel's own address, else the offending destination; never `::`, and never a
 * multicast address (RFC 4443 2.2: a Packet Too Big about a multicast packet comes from a unicast address), so
 * without a tunnel address such errors are not sent.
 */
const reply6 = (p: Uint8Array, type: number, code: number, param: number, ctx: EncapContext, out: EncapOut): void => {
  if (!Icmp.shouldReply6(p, type === Icmp.Icmp6Type.PacketTooBig)) return
  let src: Uint8Array = p
  let srcOffset = Ipv6.DST_OFFSET
  if (ctx.tunAddr6 !== null && ctx.tunAddr6.length >= 16) {
    src = ctx.tunAddr6
    srcOffset = 0
  }
  if (Ipv6.isUnspecifiedAt(src, srcOffset) || Ipv6.isMulticastAt(src, srcOffset)) return
  if (!take(ctx.icmpLimiter, ctx.nowMs)) {
    out.drops[Drop.IcmpRateLimited]++
    return
  }
  out.replies.push(Icmp.error6(p, type, code, param, src, srcOffset, icmpTtl(ctx)))
}
