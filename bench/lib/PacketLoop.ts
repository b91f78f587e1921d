/**
 * The packet code alone: `encapBatch` and `decapBatch` from src/domain called in a plain loop over one batch of
 * inner packets laid out as the TUN device hands them out (a ring with HEADROOM in front of every packet), between a
 * fixed local and remote endpoint. No Effect, no I/O, no copies: what changes here is the packet code.
 */
import { parseIpv4, parseIpv6 } from "../../src/domain/Address.js"
import type { DecapContext, DecapOut } from "../../src/domain/Decap.js"
import { decapBatch } from "../../src/domain/Decap.js"
import { makeCounts } from "../../src/domain/Drops.js"
import type { EncapContext, EncapOut } from "../../src/domain/Encap.js"
import { encapBatch, HEADROOM } from "../../src/domain/Encap.js"
import * as Ipv4 from "../../src/domain/Ipv4.js"
import * as Ipv6 from "../../src/domain/Ipv6.js"
import { makeRateLimiter } from "../../src/domain/RateLimit.js"

export type Family = 4 | 6

const address4 = (text: string): number => parseIpv4(text) ?? 0
const address6 = (text: string): Uint8Array => parseIpv6(text) ?? new Uint8Array(16)

export const LOCAL = address4("192.0.2.1")
export const REMOTE = address4("192.0.2.2")
const INNER4 = { src: address4("198.51.100.1"), dst: address4("198.51.100.2") }
const INNER6 = { src: address6("2001:db8:1::1"), dst: address6("2001:db8:1::2") }
const UDP = 17

/**
 * An inner packet of exactly `size` bytes (IP header included): UDP-numbered, TTL / hop limit 64, a payload
 * pattern that depends on `seq` so packets of a batch differ, and a valid IPv4 header checksum.
 */
export const innerPacket = (family: Family, size: number, seq: number): Uint8Array => {
  const header = family === 4 ? Ipv4.MIN_HEADER : Ipv6.HEADER
  const payload = new Uint8Array(Math.max(0, size - header))
  for (let i = 0; i < payload.length; i++) payload[i] = (seq * 31 + i) & 0xff
  return family === 4
    ? Ipv4.build({
      tos: 0,
      id: seq & 0xffff,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      ttl: 64,
      protocol: UDP,
      src: INNER4.src,
      dst: INNER4.dst,
      options: new Uint8Array(0)
    }, payload)
    : Ipv6.build({ trafficClass: 0, flowLabel: seq & 0xfffff, nextHeader: UDP, hopLimit: 64, ...INNER6 }, payload)
}

export interface Loop {
  /** The batch, as views into one ring with HEADROOM bytes before each packet. */
  readonly packets: ReadonlyArray<Uint8Array>
  /** Encapsulates then decapsulates the batch `iterations` times; returns the inner packets delivered. */
  readonly roundTrip: (iterations: number) => number
  /** Encapsulation only, `iterations` times; returns the outer packets produced. */
  readonly encapOnly: (iterations: number) => number
  /** Decapsulation only of one encapsulated batch, `iterations` times; returns the inner packets delivered. */
  readonly decapOnly: (iterations: number) => number
  /** Drops counted so far by either direction (all zero when every packet went through). */
  readonly drops: () => number
  /** The inner packets of the last decapsulation (views into the ring). */
  readonly lastDelivered: () => ReadonlyArray<Uint8Array>
}

export const makeLoop = (family: Family, size: number, batch: number): Loop => {
  const slot = HEADROOM + size
  const ring = new Uint8Array(new ArrayBuffer(slot * batch))
  const packets: Array<Uint8Array> = []
  for (let i = 0; i < batch; i++) {
    const start = i * slot + HEADROOM
    ring.set(innerPacket(family, size, i), start)
    packets.push(ring.subarray(start, start + size))
  }
  let fragmentId = 0
  const ectx: EncapContext = {
    v4: true,
    v6: true,
    ttl: 64,
    local: LOCAL,
    remoteOf: () => REMOTE,
    pathMtuOf: () => 1500,
    tunnelMtu: 1480,
    tunAddr4: 0,
    tunAddr6: null,
    isLocal4: () => false,
    icmpLimiter: makeRateLimiter(100, 100, 0),
    nowMs: 0,
    nextFragmentId: () => (fragmentId = (fragmentId % 0xffff) + 1)
  }
  const dctx: DecapContext = { v4: true, v6: true, remote: LOCAL, local: REMOTE }
  const proto = family === 4 ? Ipv4.PROTO_IPIP : Ipv4.PROTO_IPV6
  const eout: EncapOut = { frames: [], replies: [], drops: makeCounts() }
  const dout: DecapOut = { packets: [], drops: makeCounts() }

  const encapOnce = (): number => {
    eout.frames.length = 0
    eout.replies.length = 0
    encapBatch(packets, ectx, eout)
    return eout.frames.length
  }
  const decapOnce = (frames: ReadonlyArray<Uint8Array>): number => {
    dout.packets.length = 0
    decapBatch(frames, proto, dctx, dout)
    return dout.packets.length
  }
  // One encapsulated batch kept aside for decapOnly: decapsulation reads the frames and leaves them unchanged
  // (the inner ECN is rewritten only under an outer CE, which encapsulation never sets for a Not-ECT packet).
  encapOnce()
  const frozen = eout.frames.slice()

  return {
    packets,
    roundTrip: (iterations) => {
      let delivered = 0
      for (let i = 0; i < iterations; i++) {
        encapOnce()
        delivered += decapOnce(eout.frames)
      }
      return delivered
    },
    encapOnly: (iterations) => {
      let produced = 0
      for (let i = 0; i < iterations; i++) produced += encapOnce()
      return produced
    },
    decapOnly: (iterations) => {
      let delivered = 0
      for (let i = 0; i < iterations; i++) delivered += decapOnce(frozen)
      return delivered
    },
    drops: () => eout.drops.reduce((a, b) => a + b, 0) + dout.drops.reduce((a, b) => a + b, 0),
    lastDelivered: () => dout.packets.slice()
  }
}
