/** Hand-built packets for tests, written from the RFC layouts independently of src/domain. */
import { parseIpv4, parseIpv6 } from "../../src/domain/Address.js"

export const sum16 = (bytes: Uint8Array, initial = 0): number => {
  let sum = initial
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!
  if (bytes.length % 2 === 1) sum += bytes[bytes.length - 1]! << 8
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return sum
}

export const checksum = (bytes: Uint8Array, initial = 0): number => ~sum16(bytes, initial) & 0xffff

export const v4 = (text: string): number => {
  const a = parseIpv4(text)
  if (a === undefined) throw new Error(`bad IPv4 ${text}`)
  return a
}

export const v6 = (text: string): Uint8Array => {
  const a = parseIpv6(text)
  if (a === undefined) throw new Error(`bad IPv6 ${text}`)
  return a
}

export interface Ipv4Spec {
  readonly src: string
  readonly dst: string
  readonly proto?: number
  readonly ttl?: number
  readonly tos?: number
  readonly df?: boolean
  readonly id?: number
  readonly payload?: Uint8Array
}

export const ipv4Packet = (s: Ipv4Spec): Uint8Array => {
  const payload = s.payload ?? new Uint8Array(8)
  const p = new Uint8Array(20 + payload.length)
  const dv = new DataView(p.buffer)
  p[0] = 0x45
  p[1] = s.tos ?? 0
  dv.setUint16(2, p.length)
  dv.setUint16(4, s.id ?? 0x1234)
  dv.setUint16(6, s.df === true ? 0x4000 : 0)
  p[8] = s.ttl ?? 64
  p[9] = s.proto ?? 1
  dv.setUint32(12, v4(s.src))
  dv.setUint32(16, v4(s.dst))
  dv.setUint16(10, checksum(p.subarray(0, 20)))
  p.set(payload, 20)
  return p
}

/** ICMP echo request body (type 8), with a valid ICMP checksum. */
export const icmpEcho = (size: number, seq = 1): Uint8Array => {
  const b = new Uint8Array(8 + size)
  b[0] = 8
  b[6] = seq >>> 8
  b[7] = seq & 0xff
  for (let i = 8; i < b.length; i++) b[i] = i & 0xff
  const c = checksum(b)
  b[2] = c >>> 8
  b[3] = c & 0xff
  return b
}

/** ICMPv6 echo request body (type 128); its checksum needs the pseudo-header and is left 0 (not checked here). */
export const icmp6Echo = (size: number, seq = 1): Uint8Array => {
  const b = new Uint8Array(8 + size)
  b[0] = 128
  b[6] = seq >>> 8
  b[7] = seq & 0xff
  for (let i = 8; i < b.length; i++) b[i] = i & 0xff
  return b
}

export interface Ipv6Spec {
  readonly src: string
  readonly dst: string
  readonly next?: number
  readonly hop?: number
  readonly tc?: number
  readonly payload?: Uint8Array
}

export const ipv6Packet = (s: Ipv6Spec): Uint8Array => {
  const payload = s.payload ?? new Uint8Array(8)
  const p = new Uint8Array(40 + payload.length)
  const dv = new DataView(p.buffer)
  const tc = s.tc ?? 0
  dv.setUint32(0, (6 << 28) | (tc << 20) | 0x12345)
  dv.setUint16(4, payload.length)
  p[6] = s.next ?? 58
  p[7] = s.hop ?? 64
  p.set(v6(s.src), 8)
  p.set(v6(s.dst), 24)
  p.set(payload, 40)
  return p
}

/** ICMPv6 pseudo-header sum (RFC 8200 8.1) + message checksum check. */
export const icmpv6ChecksumOk = (packet: Uint8Array): boolean => {
  const len = packet.length - 40
  const pseudo = new Uint8Array(40)
  pseudo.set(packet.subarray(8, 40), 0)
  new DataView(pseudo.buffer).setUint32(32, len)
  pseudo[39] = 58
  return sum16(packet.subarray(40), sum16(pseudo)) === 0xffff
}

export const ipv4HeaderOk = (p: Uint8Array): boolean => sum16(p.subarray(0, (p[0]! & 0x0f) * 4)) === 0xffff

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex")
