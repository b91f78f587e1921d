/**
 * The virtio_net_hdr that prefixes every packet on a TUN device opened with IFF_VNET_HDR (virtio 1.x spec 5.1.6,
 * linux/virtio_net.h). Kiwitun sets its size to 12 bytes with TUNSETVNETHDRSZ: the 10-byte legacy header plus
 * `num_buffers`, which keeps the IP header behind it 4-byte aligned.
 *
 * Byte order: TUN uses the host's order unless TUNSETVNETLE/TUNSETVNETBE is set; every host Kiwitun runs on (x86-64,
 * arm64) is little endian, so the fields are read and written little endian explicitly.
 *
 * Layout: flags u8 | gso_type u8 | hdr_len u16 | gso_size u16 | csum_start u16 | csum_offset u16 | num_buffers u16.
 */
import * as Checksum from "./Checksum.js"

/** Size of the header with `num_buffers`, as set with TUNSETVNETHDRSZ. */
export const HEADER_SIZE = 12

/** `flags` bits. */
export const Flag = {
  /** The checksum at csum_start + csum_offset holds only the pseudo-header sum; the reader completes it. */
  NeedsCsum: 1,
  /** The checksum was verified (the kernel ignores it on TUN writes, measured). */
  DataValid: 2
} as const

/** `gso_type` values; `Ecn` is a bit added to TcpV4/TcpV6 when the segments carry CWR (RFC 3168). */
export const GsoType = {
  None: 0,
  TcpV4: 1,
  Udp: 3,
  TcpV6: 4,
  UdpL4: 5,
  Ecn: 0x80
} as const

/** `csum_offset` of the TCP checksum (struct tcphdr), the only one the kernel accepts on a TCP GSO write. */
export const TCP_CSUM_OFFSET = 16

/** The decoded header. Mutable so that one object can be reused for every packet of a batch (`read`). */
export interface Header {
  flags: number
  gsoType: number
  /** Bytes of IP + transport headers (a hint: the kernel recomputes it). */
  hdrLen: number
  /** Payload bytes per segment of a super-packet. */
  gsoSize: number
  /** Where the checksummed range starts, from the start of the IP packet (after this header). */
  csumStart: number
  /** Where the checksum field is, from `csumStart`. */
  csumOffset: number
  numBuffers: number
}

export const makeHeader = (): Header => ({
  flags: 0,
  gsoType: 0,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
  numBuffers: 0
})

const u16 = (b: Uint8Array, o: number): number => b[o]! | (b[o + 1]! << 8)

const setU16 = (b: Uint8Array, o: number, value: number): void => {
  b[o] = value
  b[o + 1] = value >>> 8
}

// Accessors over the header at `o` in `b`; callers check that `o + HEADER_SIZE <= b.length` (`read` does not check
// either).
export const flags = (b: Uint8Array, o = 0): number => b[o]!
export const gsoType = (b: Uint8Array, o = 0): number => b[o + 1]!
export const hdrLen = (b: Uint8Array, o = 0): number => u16(b, o + 2)
export const gsoSize = (b: Uint8Array, o = 0): number => u16(b, o + 4)
export const csumStart = (b: Uint8Array, o = 0): number => u16(b, o + 6)
export const csumOffset = (b: Uint8Array, o = 0): number => u16(b, o + 8)
export const numBuffers = (b: Uint8Array, o = 0): number => u16(b, o + 10)

/** Decodes the header at `o` in `b` into `into` (and returns it). The 12 bytes must lie inside `b`. */
export const read = (b: Uint8Array, o: number, into: Header): Header => {
  into.flags = b[o]!
  into.gsoType = b[o + 1]!
  into.hdrLen = u16(b, o + 2)
  into.gsoSize = u16(b, o + 4)
  into.csumStart = u16(b, o + 6)
  into.csumOffset = u16(b, o + 8)
  into.numBuffers = u16(b, o + 10)
  return into
}

/** Encodes `h` at `o` in `b` (values truncated to their widths). The 12 bytes must lie inside `b`. */
export const write = (b: Uint8Array, o: number, h: Readonly<Header>): void => {
  writeFields(b, o, h.flags, h.gsoType, h.hdrLen, h.gsoSize, h.csumStart, h.csumOffset)
  setU16(b, o + 10, h.numBuffers)
}

/** Encodes a header from its fields (num_buffers 0) without a `Header` object. */
export const writeFields = (
  b: Uint8Array,
  o: number,
  flagBits: number,
  type: number,
  headerLength: number,
  segmentSize: number,
  start: number,
  offset: number
): void => {
  b[o] = flagBits
  b[o + 1] = type
  setU16(b, o + 2, headerLength)
  setU16(b, o + 4, segmentSize)
  setU16(b, o + 6, start)
  setU16(b, o + 8, offset)
  setU16(b, o + 10, 0)
}

/** The all-zero header of a packet that needs nothing (flags 0, GSO none): the kernel checks its checksums itself. */
export const writePlain = (b: Uint8Array, o: number): void => {
  for (let i = 0; i < HEADER_SIZE; i++) b[o + i] = 0
}

/**
 * Completes a NEEDS_CSUM checksum in place, as the kernel's skb_checksum_help does: the field at
 * csum_start + csum_offset holds the pseudo-header sum, so the one's complement of the sum from csum_start to the end
 * of the packet is the checksum. A result of 0 is stored as 0xffff (the same value in one's complement, and the only
 * form UDP allows, RFC 768). `packet` is the IP packet without the virtio header.
 *
 * Returns true when done or nothing was needed (flag not set), false when the offsets lie outside the packet (the
 * packet is left unchanged). Never throws.
 */
export const finishChecksum = (
  packet: Uint8Array,
  hdr: Readonly<Pick<Header, "flags" | "csumStart" | "csumOffset">>
): boolean => {
  if ((hdr.flags & Flag.NeedsCsum) === 0) return true
  const start = hdr.csumStart
  const field = start + hdr.csumOffset
  if (start < 0 || hdr.csumOffset < 0 || field + 2 > packet.length) return false
  const value = Checksum.checksum(packet, start, packet.length - start) || 0xffff
  packet[field] = value >>> 8
  packet[field + 1] = value
  return true
}
