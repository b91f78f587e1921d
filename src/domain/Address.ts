/**
 * IPv4 addresses are carried as unsigned 32-bit numbers (a.b.c.d = a * 2^24 + ...), IPv6 addresses as 16-byte
 * Uint8Arrays. Parsers return `undefined` for anything that is not a valid address; they never throw.
 */

const V4_PART = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/

export const parseIpv4 = (text: string): number | undefined => {
  const parts = text.split(".")
  if (parts.length !== 4) return undefined
  let value = 0
  for (const part of parts) {
    if (!V4_PART.test(part)) return undefined
    value = value * 256 + Number(part)
  }
  return value
}

/**
 * Whether an IPv4 address (u32) can be a tunnel endpoint: not 0.0.0.0, not multicast (224/4), not the reserved 240/4
 * nor the limited broadcast 255.255.255.255.
 */
export const isUnicast4 = (addr: number): boolean => addr !== 0 && addr >>> 28 < 14

export const formatIpv4 = (addr: number): string =>
  `${(addr >>> 24) & 255}.${(addr >>> 16) & 255}.${(addr >>> 8) & 255}.${addr & 255}`

export const ipv4ToBytes = (addr: number, out: Uint8Array = new Uint8Array(4), offset = 0): Uint8Array => {
  out[offset] = (addr >>> 24) & 255
  out[offset + 1] = (addr >>> 16) & 255
  out[offset + 2] = (addr >>> 8) & 255
  out[offset + 3] = addr & 255
  return out
}

export const ipv4FromBytes = (bytes: Uint8Array, offset = 0): number =>
  ((bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!) >>> 0

const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/

export const parseIpv6 = (text: string): Uint8Array | undefined => {
  if (text.length === 0 || text.length > 45) return undefined
  let head = text
  let tail = ""
  const dbl = text.indexOf("::")
  if (dbl !== -1) {
    if (text.indexOf("::", dbl + 1) !== -1) return undefined
    head = text.slice(0, dbl)
    tail = text.slice(dbl + 2)
  }
  const groups: Array<number> = []
  const parseSide = (side: string, allowV4: boolean): Array<number> | undefined => {
    if (side === "") return []
    const parts = side.split(":")
    const out: Array<number> = []
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!
      if (allowV4 && i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p)
        if (v4 === undefined) return undefined
        out.push(v4 >>> 16, v4 & 0xffff)
      } else if (HEX_GROUP.test(p)) {
        out.push(parseInt(p, 16))
      } else {
        return undefined
      }
    }
    return out
  }
  const h = parseSide(head, dbl === -1)
  const t = dbl === -1 ? [] : parseSide(tail, true)
  if (h === undefined || t === undefined) return undefined
  if (dbl === -1) {
    if (h.length !== 8) return undefined
    groups.push(...h)
  } else {
    if (h.length + t.length > 7) return undefined
    groups.push(...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t)
  }
  const out = new Uint8Array(16)
  for (let i = 0; i < 8; i++) {
    out[2 * i] = groups[i]! >>> 8
    out[2 * i + 1] = groups[i]! & 255
  }
  return out
}

/** RFC 5952 text form. */
export const formatIpv6 = (bytes: Uint8Array, offset = 0): string => {
  const groups: Array<number> = []
  for (let i = 0; i < 8; i++) groups.push((bytes[offset + 2 * i]! << 8) | bytes[offset + 2 * i + 1]!)
  let bestStart = -1
  let bestLen = 1
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === 0) j++
    if (j - i > bestLen) {
      bestStart = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (gs: Array<number>) => gs.map((g) => g.toString(16)).join(":")
  if (bestStart === -1) return hex(groups)
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`
}

export interface Cidr {
  readonly family: 4 | 6
  /** 4 or 16 bytes */
  readonly addr: Uint8Array
  readonly prefix: number
}

/** `a.b.c.d/n` or `x:y::z/n`; a missing prefix means a host address (/32, /128). */
export const parseCidr = (text: string): Cidr | undefined => {
  const slash = text.indexOf("/")
  const addrText = slash === -1 ? text : text.slice(0, slash)
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1)
  if (prefixText !== undefined && !/^[0-9]{1,3}$/.test(prefixText)) return undefined
  const v4 = parseIpv4(addrText)
  if (v4 !== undefined) {
    const prefix = prefixText === undefined ? 32 : Number(prefixText)
    return prefix <= 32 ? { family: 4, addr: ipv4ToBytes(v4), prefix } : undefined
  }
  const v6 = parseIpv6(addrText)
  if (v6 !== undefined) {
    const prefix = prefixText === undefined ? 128 : Number(prefixText)
    return prefix <= 128 ? { family: 6, addr: v6, prefix } : undefined
  }
  return undefined
}

export const formatCidr = (cidr: Cidr): string =>
  `${cidr.family === 4 ? formatIpv4(ipv4FromBytes(cidr.addr)) : formatIpv6(cidr.addr)}/${cidr.prefix}`
