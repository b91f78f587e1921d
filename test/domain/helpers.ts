/**
 * Test helpers for the packet code: a plain reference checksum, packet builders written from the RFC layouts with
 * DataView (independent of src/domain), and a guard that turns any out-of-bounds access into an exception.
 */
import { FastCheck as fc } from "effect"
import { makeCounts } from "../../src/domain/Drops.js"
import type { EncapContext, EncapOut } from "../../src/domain/Encap.js"
import { makeRateLimiter } from "../../src/domain/RateLimit.js"
import { hex, v4 as ip4, v6 as ip6 } from "../support/packets.js"

export { hex, ip4, ip6 }

/** RFC 1071 done the slow, obvious way: big-endian 16-bit words, end-around carry at the end. */
export const refSum = (bytes: ArrayLike<number>, initial = 0): number => {
  let s = initial
  for (let i = 0; i < bytes.length; i += 2) s += (bytes[i]! << 8) + (i + 1 < bytes.length ? bytes[i + 1]! : 0)
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000)
  return s
}
export const refChecksum = (bytes: ArrayLike<number>, initial = 0): number => 0xffff - refSum(bytes, initial)

const addr4 = (a: string | number): number => (typeof a === "number" ? a : ip4(a))
const addr6 = (a: string | Uint8Array): Uint8Array => (typeof a === "string" ? ip6(a) : a)

export const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/[^0-9a-f]/gi, ""), "hex"))

export interface V4Spec {
  readonly src?: string | number
  readonly dst?: string | number
  readonly tos?: number
  readonly id?: number
  readonly df?: boolean
  readonly mf?: boolean
  readonly offset8?: number
  readonly ttl?: number
  readonly proto?: number
  readonly options?: Uint8Array
  readonly payload?: Uint8Array
}

/** An IPv4 packet with a correct header checksum (RFC 791 3.1). */
export const v4Packet = (s: V4Spec = {}): Uint8Array => {
  const options = s.options ?? new Uint8Array(0)
  const payload = s.payload ?? patterned(16)
  const hl = 20 + options.length
  const p = new Uint8Array(hl + payload.length)
  const dv = new DataView(p.buffer)
  dv.setUint8(0, 0x40 | (hl / 4))
  dv.setUint8(1, s.tos ?? 0)
  dv.setUint16(2, p.length)
  dv.setUint16(4, s.id ?? 0xbeef)
  dv.setUint16(6, (s.df === true ? 0x4000 : 0) | (s.mf === true ? 0x2000 : 0) | (s.offset8 ?? 0))
  dv.setUint8(8, s.ttl ?? 64)
  dv.setUint8(9, s.proto ?? 17)
  dv.setUint32(12, addr4(s.src ?? "203.0.113.10"))
  dv.setUint32(16, addr4(s.dst ?? "203.0.113.20"))
  p.set(options, 20)
  dv.setUint16(10, refChecksum(p.subarray(0, hl)))
  p.set(payload, hl)
  return p
}

export interface V6Spec {
  readonly src?: string | Uint8Array
  readonly dst?: string | Uint8Array
  readonly tc?: number
  readonly flow?: number
  readonly next?: number
  readonly hop?: number
  readonly payload?: Uint8Array
}

/** An IPv6 packet (RFC 8200 3). */
export const v6Packet = (s: V6Spec = {}): Uint8Array => {
  const payload = s.payload ?? patterned(16)
  const p = new Uint8Array(40 + payload.length)
  const dv = new DataView(p.buffer)
  dv.setUint32(0, ((6 << 28) | ((s.tc ?? 0) << 20) | (s.flow ?? 0)) >>> 0)
  dv.setUint16(4, payload.length)
  dv.setUint8(6, s.next ?? 17)
  dv.setUint8(7, s.hop ?? 64)
  p.set(addr6(s.src ?? "2001:db8:1::10"), 8)
  p.set(addr6(s.dst ?? "2001:db8:2::20"), 24)
  p.set(payload, 40)
  return p
}

/** Bytes 0, 1, 2, ... (mod 256) from `start`: easy to recognise in a quote. */
export const patterned = (n: number, start = 0): Uint8Array => {
  const b = new Uint8Array(n)
  for (let i = 0; i < n; i++) b[i] = (start + i) & 0xff
  return b
}

/** Rewrites the IPv4 header checksum with the reference implementation (after a test edits a field). */
export const fixV4Checksum = (p: Uint8Array): Uint8Array => {
  p[10] = 0
  p[11] = 0
  const c = refChecksum(p.subarray(0, (p[0]! & 0x0f) * 4))
  p[10] = c >>> 8
  p[11] = c & 0xff
  return p
}

/** A copy of `p` with `HEADROOM` bytes in front of it in the same buffer, as the TUN layer hands packets out. */
export const withHeadroom = (p: Uint8Array, headroom = 20): Uint8Array => {
  const buf = new Uint8Array(headroom + p.length + 7)
  buf.fill(0xee)
  buf.set(p, headroom)
  return buf.subarray(headroom, headroom + p.length)
}

const isIndexKey = (key: string): boolean => key !== "" && String(Number(key)) === key

/**
 * A view of `bytes` that throws on any index read or write outside it (a plain Uint8Array returns undefined and
 * ignores the write) and hands out guarded sub-views. Methods run on the real array.
 */
export const guarded = (bytes: Uint8Array): Uint8Array =>
  new Proxy(bytes, {
    get(target, key) {
      if (typeof key === "string" && isIndexKey(key)) {
        const i = Number(key)
        if (!Number.isInteger(i) || i < 0 || i >= target.length) {
          throw new RangeError(`read of index ${key} of a ${target.length}-byte view`)
        }
        return target[i]
      }
      if (key === "subarray") return (start?: number, end?: number) => guarded(target.subarray(start, end))
      const value: unknown = Reflect.get(target, key, target)
      return typeof value === "function" ? value.bind(target) : value
    },
    set(target, key, value) {
      if (typeof key === "string" && isIndexKey(key)) {
        const i = Number(key)
        if (!Number.isInteger(i) || i < 0 || i >= target.length) {
          throw new RangeError(`write of index ${key} of a ${target.length}-byte view`)
        }
      }
      return Reflect.set(target, key, value, target)
    }
  })

export const REMOTE = "198.51.100.2"
export const LOCAL = "192.0.2.1"

/** A context for one fixed remote, everything overridable. */
export const encapContext = (over: Partial<EncapContext> = {}): EncapContext => {
  let nextId = 0x4000
  return {
    v4: true,
    v6: true,
    ttl: 64,
    local: ip4(LOCAL),
    remoteOf: () => ip4(REMOTE),
    pathMtuOf: () => 1500,
    tunnelMtu: 1480,
    tunAddr4: 0,
    tunAddr6: null,
    isLocal4: () => false,
    icmpLimiter: makeRateLimiter(100, 100, 0),
    nowMs: 0,
    nextFragmentId: () => nextId++,
    ...over
  }
}

export const encapOut = (): EncapOut => ({ frames: [], replies: [], drops: makeCounts() })

/** Drop counts as a sparse record, for readable assertions. */
export const dropsOf = (drops: Uint32Array): Record<number, number> => {
  const r: Record<number, number> = {}
  drops.forEach((n, i) => {
    if (n !== 0) r[i] = n
  })
  return r
}

/**
 * Reassembles IPv4 fragments (RFC 791 3.2, in any order) into the payload of the original datagram; checks they
 * share one ID and cover the payload exactly once. Returns undefined when they do not.
 */
export const reassemble = (fragments: ReadonlyArray<Uint8Array>): Uint8Array | undefined => {
  if (fragments.length === 0) return undefined
  const id = (fragments[0]![4]! << 8) | fragments[0]![5]!
  let total = -1
  const pieces: Array<{ off: number; data: Uint8Array }> = []
  for (const f of fragments) {
    const hl = (f[0]! & 0x0f) * 4
    if (((f[4]! << 8) | f[5]!) !== id) return undefined
    const word = (f[6]! << 8) | f[7]!
    const off = (word & 0x1fff) * 8
    const data = f.subarray(hl, (f[2]! << 8) | f[3]!)
    if ((word & 0x2000) === 0) total = off + data.length
    pieces.push({ off, data })
  }
  if (total < 0) return undefined
  const out = new Uint8Array(total)
  const seen = new Uint8Array(total)
  for (const { data, off } of pieces) {
    if (off + data.length > total) return undefined
    for (let i = 0; i < data.length; i++) {
      if (seen[off + i] === 1) return undefined
      seen[off + i] = 1
      out[off + i] = data[i]!
    }
  }
  return seen.every((x) => x === 1) ? out : undefined
}

const byte = fc.integer({ min: 0, max: 255 })
const u32 = fc.integer({ min: 0, max: 0xffffffff })

/** Arbitrary valid IPv4 packets: any field values (TTL >= 1), options, fragments, payload up to `maxPayload`. */
export const arbV4Packet = (maxPayload = 1400): fc.Arbitrary<Uint8Array> =>
  fc.record({
    tos: byte,
    id: fc.integer({ min: 0, max: 0xffff }),
    df: fc.boolean(),
    mf: fc.boolean(),
    offset8: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0x1fff })),
    ttl: fc.integer({ min: 1, max: 255 }),
    proto: byte,
    src: u32,
    dst: u32,
    options: fc.integer({ min: 0, max: 10 }).chain((words) =>
      fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })
    ),
    payload: fc.uint8Array({ maxLength: maxPayload, size: "max" })
  }).map((s) => v4Packet(s))

/** Arbitrary valid IPv6 packets: any traffic class, flow label, next header, hop limit >= 1 and addresses. */
export const arbV6Packet = (maxPayload = 1400): fc.Arbitrary<Uint8Array> =>
  fc.record({
    tc: byte,
    flow: fc.integer({ min: 0, max: 0xfffff }),
    next: byte,
    hop: fc.integer({ min: 1, max: 255 }),
    src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    payload: fc.uint8Array({ maxLength: maxPayload, size: "max" })
  }).map((s) => v6Packet(s))
