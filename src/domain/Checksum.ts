/**
 * Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * Sums are one's complement sums of big-endian 16-bit words, folded to 16 bits (0..0xffff). They can be added
 * together with `add` (pseudo-header + payload), and turned into the checksum field value with `finish`.
 */

/** x86 and arm64 are little endian: a Uint32Array read sees each 16-bit word byte-swapped. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** Below this many bytes a byte loop is cheaper than creating a Uint32Array view. */
const WIDE_MIN = 64

/**
 * Words per block of the wide loop. Whole 32-bit words are added (2^16 = 1 in one's complement arithmetic, so the
 * two halves fold together at the end): four float accumulators of up to 2^18 words each stay exact (< 2^53).
 */
const BLOCK_WORDS = 1 << 20

/** Folds a non-negative sum (below 2^53) to 16 bits with end-around carry. */
export const fold = (sum: number): number => {
  let s = sum
  while (s > 0xffff) s = s > 0xffffffff ? (s % 0x10000) + Math.floor(s / 0x10000) : (s & 0xffff) + (s >>> 16)
  return s
}

const swap16 = (v: number): number => ((v & 0xff) << 8) | (v >>> 8)

/** One's complement addition of two folded sums. */
export const add = (a: number, b: number): number => fold(a + b)

/** The checksum field value for a folded sum. */
export const finish = (sum: number): number => ~fold(sum) & 0xffff

/**
 * Folded one's complement sum of `length` bytes of `bytes` from `offset`, words counted from `offset` (an odd
 * trailing byte is padded with a zero byte, RFC 1071 4.1). `initial` is a folded sum to continue from.
 * The range must lie inside `bytes`.
 */
export const sum = (bytes: Uint8Array, offset: number, length: number, initial = 0): number => {
  const end = offset + length
  let acc = initial
  if (length < WIDE_MIN) {
    let i = offset
    for (; i + 1 < end; i += 2) acc += (bytes[i]! << 8) | bytes[i + 1]!
    if (i < end) acc += bytes[i]! << 8
    return fold(acc)
  }
  // Bytes before the first 4-byte aligned address, paired from `offset`.
  const pre = (4 - ((bytes.byteOffset + offset) & 3)) & 3
  for (let j = 0; j < pre; j++) acc += (j & 1) === 0 ? bytes[offset + j]! << 8 : bytes[offset + j]!
  const words = (length - pre) >>> 2
  const wide = new Uint32Array(bytes.buffer, bytes.byteOffset + offset + pre, words)
  let mid = 0
  for (let start = 0; start < words; start += BLOCK_WORDS) {
    const stop = Math.min(words, start + BLOCK_WORDS)
    let a = 0
    let b = 0
    let c = 0
    let d = 0
    let k = start
    for (; k + 3 < stop; k += 4) {
      a += wide[k]!
      b += wide[k + 1]!
      c += wide[k + 2]!
      d += wide[k + 3]!
    }
    for (; k < stop; k++) a += wide[k]!
    mid = fold(mid + a + b + c + d)
  }
  // RFC 1071 2(B): the sum is byte-order independent, so a sum of swapped words is the swapped sum. The middle
  // words are swapped once by a little-endian load and once more when they start at an odd distance from `offset`.
  if (LITTLE_ENDIAN !== ((pre & 1) === 1)) mid = swap16(mid)
  acc += mid
  for (let j = pre + words * 4; j < length; j++) acc += (j & 1) === 0 ? bytes[offset + j]! << 8 : bytes[offset + j]!
  return fold(acc)
}

/** The checksum field value for a byte range (with an optional pseudo-header sum to start from). */
export const checksum = (bytes: Uint8Array, offset: number, length: number, initial = 0): number =>
  finish(sum(bytes, offset, length, initial))

/** Folded sum of the IPv4 pseudo-header (RFC 768, RFC 793 3.1): addresses as u32, upper-layer length in bytes. */
export const pseudoHeader4 = (src: number, dst: number, protocol: number, length: number): number =>
  fold((src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length)

/**
 * Folded sum of the IPv6 pseudo-header (RFC 8200 8.1): the 32 bytes of source then destination address starting
 * at `addrOffset` in `bytes` (8 in an IPv6 header), the upper-layer length and the next header value.
 */
export const pseudoHeader6 = (bytes: Uint8Array, addrOffset: number, length: number, nextHeader: number): number =>
  fold(sum(bytes, addrOffset, 32) + (length >>> 16) + (length & 0xffff) + nextHeader)

/**
 * The checksum field after one 16-bit word covered by it changed from `oldWord` to `newWord`: RFC 1624 eqn. 3,
 * HC' = ~(~HC + ~m + m'), which (unlike the RFC 1141 form) agrees with a full recomputation in every case.
 */
export const update16 = (check: number, oldWord: number, newWord: number): number =>
  ~fold((~check & 0xffff) + (~oldWord & 0xffff) + (newWord & 0xffff)) & 0xffff
