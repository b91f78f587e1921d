/**
 * IPv6 fixed header (RFC 8200 3) over a packet that starts at byte 0 of the given view.
 *
 * Accessors do not check bounds: callers check `bytes.length >= 40` first. `parse` is the checked entry point for
 * untrusted bytes.
 */
export const HEADER = 40
/** RFC 8200 5: every link carries at least this much; the ICMPv6 error size limit (RFC 4443 2.4(c)). */
export const MIN_MTU = 1280
export const NEXT_ICMPV6 = 58
export const NEXT_HOP_BY_HOP = 0
export const NEXT_ROUTING = 43
export const NEXT_FRAGMENT = 44
export const NEXT_DEST_OPTS = 60
export const NEXT_AH = 51
export const NEXT_NONE = 59

export const SRC_OFFSET = 8
export const DST_OFFSET = 24

export const version = (p: Uint8Array): number => p[0]! >>> 4
export const trafficClass = (p: Uint8Array): number => ((p[0]! & 0x0f) << 4) | (p[1]! >>> 4)
export const ecn = (p: Uint8Array): number => (p[1]! >>> 4) & 3
export const flowLabel = (p: Uint8Array): number => ((p[1]! & 0x0f) << 16) | (p[2]! << 8) | p[3]!
export const payloadLength = (p: Uint8Array): number => (p[4]! << 8) | p[5]!
export const nextHeader = (p: Uint8Array): number => p[6]!
export const hopLimit = (p: Uint8Array): number => p[7]!
/** Copies of the addresses; hot paths read the bytes at SRC_OFFSET / DST_OFFSET instead. */
export const src = (p: Uint8Array): Uint8Array => p.slice(SRC_OFFSET, SRC_OFFSET + 16)
export const dst = (p: Uint8Array): Uint8Array => p.slice(DST_OFFSET, DST_OFFSET + 16)

/** Version 6, traffic class and flow label in the first four bytes. */
export const setFirstWord = (p: Uint8Array, tc: number, flow: number): void => {
  p[0] = 0x60 | ((tc >>> 4) & 0x0f)
  p[1] = ((tc & 0x0f) << 4) | ((flow >>> 16) & 0x0f)
  p[2] = flow >>> 8
  p[3] = flow
}
/** Rewrites the ECN bits of the traffic class (IPv6 has no header checksum to fix). */
export const setEcn = (p: Uint8Array, value: number): void => {
  p[1] = (p[1]! & 0xcf) | ((value & 3) << 4)
}
export const setPayloadLength = (p: Uint8Array, value: number): void => {
  p[4] = value >>> 8
  p[5] = value
}
export const setNextHeader = (p: Uint8Array, value: number): void => {
  p[6] = value
}
export const setHopLimit = (p: Uint8Array, value: number): void => {
  p[7] = value
}
export const setSrc = (p: Uint8Array, addr: Uint8Array): void => {
  p.set(addr.subarray(0, 16), SRC_OFFSET)
}
export const setDst = (p: Uint8Array, addr: Uint8Array): void => {
  p.set(addr.subarray(0, 16), DST_OFFSET)
}

/** Address classes on the 16 bytes at `o` in `b` (RFC 4291 2.4). */
export const isUnspecifiedAt = (b: Uint8Array, o: number): boolean => {
  for (let i = 0; i < 16; i++) if (b[o + i] !== 0) return false
  return true
}
export const isLoopbackAt = (b: Uint8Array, o: number): boolean => {
  for (let i = 0; i < 15; i++) if (b[o + i] !== 0) return false
  return b[o + 15] === 1
}
export const isMulticastAt = (b: Uint8Array, o: number): boolean => b[o] === 0xff
/** ::/96: IPv4-compatible (RFC 4291 2.5.5.1), which also holds :: and ::1. */
export const isZero96At = (b: Uint8Array, o: number): boolean => {
  for (let i = 0; i < 12; i++) if (b[o + i] !== 0) return false
  return true
}
/** ::ffff:0:0/96 (RFC 4291 2.5.5.2). */
export const isV4MappedAt = (b: Uint8Array, o: number): boolean => {
  for (let i = 0; i < 10; i++) if (b[o + i] !== 0) return false
  return b[o + 10] === 0xff && b[o + 11] === 0xff
}

export const equalAt = (a: Uint8Array, ao: number, b: Uint8Array, bo: number): boolean => {
  for (let i = 0; i < 16; i++) if (a[ao + i] !== b[bo + i]) return false
  return true
}

export interface Ipv6Header {
  readonly trafficClass: number
  /** 20 bits. */
  readonly flowLabel: number
  readonly nextHeader: number
  readonly hopLimit: number
  /** 16 bytes. */
  readonly src: Uint8Array
  /** 16 bytes. */
  readonly dst: Uint8Array
}

export type ParseErrorReason = "truncated" | "version" | "payload-length"

export interface ParseError {
  readonly _tag: "ParseError"
  readonly reason: ParseErrorReason
}

const parseError = (reason: ParseErrorReason): ParseError => Object.freeze({ _tag: "ParseError", reason })

const errors: { readonly [R in ParseErrorReason]: ParseError } = {
  truncated: parseError("truncated"),
  version: parseError("version"),
  "payload-length": parseError("payload-length")
}

export const isParseError = (value: Ipv6Header | ParseError): value is ParseError =>
  "_tag" in value && value._tag === "ParseError"

/**
 * Checks a packet (version 6, 40 + payload length inside the bytes) and returns its fixed header fields. Bytes
 * after the payload are ignored; jumbograms (payload length 0 with a Jumbo option) are not supported and parse as an
 * empty payload. Never throws, never reads outside `bytes`.
 */
export const parse = (bytes: Uint8Array): Ipv6Header | ParseError => {
  if (bytes.length < HEADER) return errors.truncated
  if (version(bytes) !== 6) return errors.version
  if (HEADER + payloadLength(bytes) > bytes.length) return errors["payload-length"]
  return {
    trafficClass: trafficClass(bytes),
    flowLabel: flowLabel(bytes),
    nextHeader: nextHeader(bytes),
    hopLimit: hopLimit(bytes),
    src: src(bytes),
    dst: dst(bytes)
  }
}

/** A complete packet: the fixed header (payload length computed) followed by `payload`. */
export const build = (header: Ipv6Header, payload: Uint8Array): Uint8Array => {
  const p = new Uint8Array(HEADER + payload.length)
  setFirstWord(p, header.trafficClass, header.flowLabel)
  setPayloadLength(p, payload.length)
  setNextHeader(p, header.nextHeader)
  setHopLimit(p, header.hopLimit)
  setSrc(p, header.src)
  setDst(p, header.dst)
  p.set(payload, HEADER)
  return p
}
