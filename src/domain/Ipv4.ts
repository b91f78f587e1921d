/**
 * IPv4 header (RFC 791 3.1) over a packet that starts at byte 0 of the given view.
 *
 * Accessors do not check bounds: callers check `bytes.length` first (every accessor reads inside the first 20
 * bytes). `parse` is the checked entry point for untrusted bytes.
 */
import { ipv4FromBytes, ipv4ToBytes } from "./Address.js"
import * as Checksum from "./Checksum.js"

export const MIN_HEADER = 20
export const MAX_HEADER = 60
export const PROTO_ICMP = 1
export const PROTO_IPIP = 4
export const PROTO_IPV6 = 41

/** ECN codepoints (RFC 3168 5), the low two bits of the TOS / traffic class byte. */
export const Ecn = { NotEct: 0, Ect1: 1, Ect0: 2, Ce: 3 } as const

export const version = (p: Uint8Array): number => p[0]! >>> 4
/** Header length in 32-bit words. */
export const ihl = (p: Uint8Array): number => p[0]! & 0x0f
/** Header length in bytes. */
export const headerLength = (p: Uint8Array): number => (p[0]! & 0x0f) << 2
export const tos = (p: Uint8Array): number => p[1]!
export const ecn = (p: Uint8Array): number => p[1]! & 3
export const totalLength = (p: Uint8Array): number => (p[2]! << 8) | p[3]!
export const id = (p: Uint8Array): number => (p[4]! << 8) | p[5]!
export const dontFragment = (p: Uint8Array): boolean => (p[6]! & 0x40) !== 0
export const moreFragments = (p: Uint8Array): boolean => (p[6]! & 0x20) !== 0
/** Fragment offset in 8-byte units. */
export const fragmentOffset = (p: Uint8Array): number => ((p[6]! & 0x1f) << 8) | p[7]!
/** A fragment of a larger datagram (first or later). */
export const isFragment = (p: Uint8Array): boolean => (p[6]! & 0x3f) !== 0 || p[7]! !== 0
export const ttl = (p: Uint8Array): number => p[8]!
export const protocol = (p: Uint8Array): number => p[9]!
export const checksum = (p: Uint8Array): number => (p[10]! << 8) | p[11]!
export const src = (p: Uint8Array): number => ipv4FromBytes(p, 12)
export const dst = (p: Uint8Array): number => ipv4FromBytes(p, 16)

export const setVersionIhl = (p: Uint8Array, words: number): void => {
  p[0] = 0x40 | (words & 0x0f)
}
export const setTos = (p: Uint8Array, value: number): void => {
  p[1] = value
}
export const setTotalLength = (p: Uint8Array, value: number): void => {
  p[2] = value >>> 8
  p[3] = value
}
export const setId = (p: Uint8Array, value: number): void => {
  p[4] = value >>> 8
  p[5] = value
}
/** Flags (DF, MF) and fragment offset in 8-byte units; the reserved bit is written as zero. */
export const setFragment = (p: Uint8Array, df: boolean, mf: boolean, offset: number): void => {
  p[6] = (df ? 0x40 : 0) | (mf ? 0x20 : 0) | ((offset >>> 8) & 0x1f)
  p[7] = offset
}
export const setTtl = (p: Uint8Array, value: number): void => {
  p[8] = value
}
export const setProtocol = (p: Uint8Array, value: number): void => {
  p[9] = value
}
export const setChecksum = (p: Uint8Array, value: number): void => {
  p[10] = value >>> 8
  p[11] = value
}
export const setSrc = (p: Uint8Array, addr: number): void => {
  ipv4ToBytes(addr, p, 12)
}
export const setDst = (p: Uint8Array, addr: number): void => {
  ipv4ToBytes(addr, p, 16)
}

/** True when the header checksum is right. The header (IHL * 4 bytes) must lie inside `p`. */
export const verifyChecksum = (p: Uint8Array): boolean => Checksum.sum(p, 0, headerLength(p)) === 0xffff

/** Computes and stores the header checksum. The header (IHL * 4 bytes) must lie inside `p`. */
export const computeChecksum = (p: Uint8Array): void => {
  p[10] = 0
  p[11] = 0
  setChecksum(p, Checksum.checksum(p, 0, headerLength(p)))
}

/**
 * Rewrites the ECN bits and fixes the header checksum incrementally (RFC 1624): the first 16-bit word (version,
 * IHL, TOS) is the only one that changes.
 */
export const setEcnIncremental = (p: Uint8Array, value: number): void => {
  const oldWord = (p[0]! << 8) | p[1]!
  const newTos = (p[1]! & 0xfc) | (value & 3)
  p[1] = newTos
  setChecksum(p, Checksum.update16(checksum(p), oldWord, (p[0]! << 8) | newTos))
}

/** 0.0.0.0/8 ("this network", RFC 1122 3.2.1.3) */
export const isThisNetwork = (addr: number): boolean => addr >>> 24 === 0
export const isLoopback = (addr: number): boolean => addr >>> 24 === 127
export const isMulticast = (addr: number): boolean => addr >>> 28 === 0xe
export const isLimitedBroadcast = (addr: number): boolean => addr === 0xffffffff

/** The fields of an IPv4 header; IHL, total length and checksum are derived by `build` and checked by `parse`. */
export interface Ipv4Header {
  readonly tos: number
  readonly id: number
  readonly dontFragment: boolean
  readonly moreFragments: boolean
  /** In 8-byte units. */
  readonly fragmentOffset: number
  readonly ttl: number
  readonly protocol: number
  readonly src: number
  readonly dst: number
  /** Option bytes, a multiple of 4 and at most 40 bytes (empty for the usual 20-byte header). */
  readonly options: Uint8Array
}

export type ParseErrorReason = "truncated" | "version" | "header-length" | "total-length" | "checksum"

export interface ParseError {
  readonly _tag: "ParseError"
  readonly reason: ParseErrorReason
}

const parseError = (reason: ParseErrorReason): ParseError => Object.freeze({ _tag: "ParseError", reason })

/** One shared, frozen value per reason: failing to parse allocates nothing. */
const errors: { readonly [R in ParseErrorReason]: ParseError } = {
  truncated: parseError("truncated"),
  version: parseError("version"),
  "header-length": parseError("header-length"),
  "total-length": parseError("total-length"),
  checksum: parseError("checksum")
}

export const isParseError = (value: Ipv4Header | ParseError): value is ParseError =>
  "_tag" in value && value._tag === "ParseError"

/**
 * Checks a packet (version 4, IHL >= 5, header and total length inside the bytes, header checksum) and returns its
 * header fields. Bytes after the total length are ignored. Never throws, never reads outside `bytes`.
 */
export const parse = (bytes: Uint8Array): Ipv4Header | ParseError => {
  if (bytes.length < MIN_HEADER) return errors.truncated
  if (version(bytes) !== 4) return errors.version
  const hl = headerLength(bytes)
  if (hl < MIN_HEADER) return errors["header-length"]
  const total = totalLength(bytes)
  if (hl > bytes.length) return errors.truncated
  if (total < hl) return errors["header-length"]
  if (total > bytes.length) return errors["total-length"]
  if (!verifyChecksum(bytes)) return errors.checksum
  return {
    tos: tos(bytes),
    id: id(bytes),
    dontFragment: dontFragment(bytes),
    moreFragments: moreFragments(bytes),
    fragmentOffset: fragmentOffset(bytes),
    ttl: ttl(bytes),
    protocol: protocol(bytes),
    src: src(bytes),
    dst: dst(bytes),
    options: bytes.slice(MIN_HEADER, hl)
  }
}

/**
 * A complete packet: the header (with IHL, total length and checksum computed) followed by `payload`.
 * Field values are truncated to their widths; options are padded with zeros to a multiple of 4 and cut at 40 bytes.
 */
export const build = (header: Ipv4Header, payload: Uint8Array): Uint8Array => {
  const optionLength = Math.min(MAX_HEADER - MIN_HEADER, (header.options.length + 3) & ~3)
  const hl = MIN_HEADER + optionLength
  const p = new Uint8Array(hl + payload.length)
  setVersionIhl(p, hl >>> 2)
  setTos(p, header.tos)
  setTotalLength(p, hl + payload.length)
  setId(p, header.id)
  setFragment(p, header.dontFragment, header.moreFragments, header.fragmentOffset)
  setTtl(p, header.ttl)
  setProtocol(p, header.protocol)
  setSrc(p, header.src)
  setDst(p, header.dst)
  p.set(header.options.subarray(0, optionLength), MIN_HEADER)
  p.set(payload, hl)
  computeChecksum(p)
  return p
}
