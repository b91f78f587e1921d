/**
 * Encapsulation (TUN -> network), behaviour.md "Encapsulation" steps 1-7.
 * Pure, synchronous, allocation-light: one call per chunk.
 */
import type { RateLimiter } from "./RateLimit.js"

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
}

export interface EncapOut {
  /** Outer IPv4 packets to send (views into the input buffers' headroom, or into `scratch`). */
  readonly frames: Array<Uint8Array>
  /** ICMP / ICMPv6 errors to write back into the TUN device (copies, owned by the caller after return). */
  readonly replies: Array<Uint8Array>
  /** Drop counts by `Drop` reason, added to. */
  readonly drops: Uint32Array
}
