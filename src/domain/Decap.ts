/**
 * Decapsulation (network -> TUN), behaviour.md "Decapsulation" steps 1-6.
 * Pure, synchronous: one call per chunk.
 */
import { Drop } from "./Drops.js"
import * as Ipv4 from "./Ipv4.js"
import * as Ipv6 from "./Ipv6.js"

export interface DecapContext {
  readonly v4: boolean
  readonly v6: boolean
  /** Fixed remote (u32) or 0 = accept any outer source (dynamic mode). */
  readonly remote: number
  /** `-l` (u32) or 0 = accept any outer destination. */
  readonly local: number
}

export interface DecapOut {
  /** Inner packets to write to the TUN device (views into the received frames). */
  readonly packets: Array<Uint8Array>
  /** Drop counts by `Drop` reason, added to. */
  readonly drops: Uint32Array
}

const DELIVER = -1
const IPV4_HEADER = Ipv4.MIN_HEADER

/**
 * Decapsulates a batch of outer IPv4 packets received on the raw socket of protocol `proto` (behaviour.md
 * "Decapsulation"). Inner packets go to `out.packets` as views into the frames (an inner IPv4 ECN rewrite is done in
 * place); every dropped frame is counted in `out.drops`. Never throws.
 */
export const decapBatch = (
  frames: ReadonlyArray<Uint8Array>,
  proto: 4 | 41,
  ctx: DecapContext,
  out: DecapOut
): void => {
  const drops = out.drops
  for (let i = 0; i < frames.length; i++) {
    const verdict = decapOne(frames[i]!, proto, ctx, out.packets)
    if (verdict !== DELIVER) drops[verdict]++
  }
}

/** DELIVER, or the drop reason. */
const decapOne = (f: Uint8Array, proto: 4 | 41, ctx: DecapContext, packets: Array<Uint8Array>): number => {
  const length = f.length
  if (length < IPV4_HEADER || f[0]! >>> 4 !== 4) return Drop.DecapOuterBadHeader
  const hl = Ipv4.headerLength(f)
  if (hl < IPV4_HEADER || hl > length) return Drop.DecapOuterBadHeader
  if (!Ipv4.verifyChecksum(f)) return Drop.DecapOuterBadChecksum
  // The total length delimits the inner packet; anything after it (link padding) is not part of it.
  const total = Ipv4.totalLength(f)
  if (total > length) return Drop.DecapOuterTruncated
  if (total < hl) return Drop.DecapOuterBadHeader
  // The kernel reassembles before raw delivery, so a fragment here is malformed or forged.
  if (Ipv4.isFragment(f)) return Drop.DecapFragment
  if (Ipv4.protocol(f) !== proto) return Drop.DecapOuterBadHeader
  if (proto === Ipv4.PROTO_IPIP ? !ctx.v4 : !ctx.v6) return Drop.DecapModeDisabled
  if (ctx.remote !== 0 && Ipv4.src(f) !== ctx.remote >>> 0) return Drop.DecapRemoteMismatch
  if (ctx.local !== 0 && Ipv4.dst(f) !== ctx.local >>> 0) return Drop.DecapLocalMismatch
  const outerEcn = Ipv4.ecn(f)

  if (total === hl) return Drop.DecapInnerTruncated
  const innerVersion = f[hl]! >>> 4
  const size = total - hl
  if (proto === Ipv4.PROTO_IPIP) {
    if (innerVersion !== 4) return Drop.DecapInnerBadVersion
    const inner = f.subarray(hl, total)
    if (size < IPV4_HEADER || Ipv4.totalLength(inner) !== size) return Drop.DecapInnerTruncated
    const ihl = Ipv4.headerLength(inner)
    if (ihl < IPV4_HEADER || ihl > size) return Drop.DecapInnerBadHeader
    if (!Ipv4.verifyChecksum(inner)) return Drop.DecapInnerBadChecksum
    if (Ipv4.ttl(inner) === 0) return Drop.DecapTtlZero
    const innerEcn = Ipv4.ecn(inner)
    const ecn = decapEcn(outerEcn, innerEcn)
    if (ecn < 0) return Drop.DecapEcnCe
    if (ecn !== innerEcn) Ipv4.setEcnIncremental(inner, ecn)
    packets.push(inner)
    return DELIVER
  }
  if (innerVersion !== 6) return Drop.DecapInnerBadVersion
  const inner = f.subarray(hl, total)
  if (size < Ipv6.HEADER || Ipv6.HEADER + Ipv6.payloadLength(inner) !== size) return Drop.DecapInnerTruncated
  if (Ipv6.hopLimit(inner) === 0) return Drop.DecapTtlZero
  // RFC 4213 3.6: sources that cannot be a real sender behind the tunnel (::/96 covers IPv4-compatible, :: and
  // ::1). Link-local is kept for neighbour discovery on the tunnel link; multicast destinations are delivered.
  const s = Ipv6.SRC_OFFSET
  if (Ipv6.isZero96At(inner, s) || Ipv6.isV4MappedAt(inner, s) || Ipv6.isMulticastAt(inner, s)) {
    return Drop.DecapBadSource
  }
  const innerEcn = Ipv6.ecn(inner)
  const ecn = decapEcn(outerEcn, innerEcn)
  if (ecn < 0) return Drop.DecapEcnCe
  if (ecn !== innerEcn) Ipv6.setEcn(inner, ecn)
  packets.push(inner)
  return DELIVER
}

/**
 * RFC 6040 4.2 (table 2): the inner ECN field after decapsulation, or -1 to drop. An outer CE marks an ECT inner
 * and cannot be carried by a Not-ECT one; an outer ECT(1) (a congestion signal in some schemes) is kept over ECT(0).
 */
export const decapEcn = (outer: number, inner: number): number => {
  if (outer === Ipv4.Ecn.Ce) return inner === Ipv4.Ecn.NotEct ? -1 : Ipv4.Ecn.Ce
  if (outer === Ipv4.Ecn.Ect1 && inner === Ipv4.Ecn.Ect0) return Ipv4.Ecn.Ect1
  return inner
}
