/**
 * rtnetlink message codecs (pure, no I/O). Layouts follow the kernel's uapi headers: <linux/netlink.h>
 * (nlmsghdr, nlmsgerr), <linux/rtnetlink.h> (rtattr, rtmsg, rtnexthop, rtvia) and <linux/if_addr.h> (ifaddrmsg).
 * Netlink integers are in host byte order; addresses inside attributes are in network order.
 *
 * Every decoder takes arbitrary bytes and returns either a value or a `NetlinkParseError`; none of them throws or
 * reads outside the view it was given.
 */
import { Either } from "effect"

// netlink message types (<linux/netlink.h>, <linux/rtnetlink.h>)
export const NLMSG_NOOP = 1
export const NLMSG_ERROR = 2
export const NLMSG_DONE = 3
export const NLMSG_OVERRUN = 4
export const RTM_NEWADDR = 20
export const RTM_DELADDR = 21
export const RTM_GETADDR = 22
export const RTM_NEWROUTE = 24
export const RTM_DELROUTE = 25
export const RTM_GETROUTE = 26

// nlmsg_flags
export const NLM_F_REQUEST = 0x1
export const NLM_F_MULTI = 0x2
export const NLM_F_ACK = 0x4
export const NLM_F_DUMP_INTR = 0x10
export const NLM_F_DUMP = 0x300
export const NLM_F_REPLACE = 0x100
export const NLM_F_EXCL = 0x200
export const NLM_F_CREATE = 0x400
/** On an NLMSG_ERROR: the quoted request was cut to its header. */
export const NLM_F_CAPPED = 0x100
/** On an NLMSG_ERROR: extended-ACK attributes follow the quoted request. */
export const NLM_F_ACK_TLVS = 0x200

/** Multicast groups (the legacy bitmask form, for sockaddr_nl.nl_groups). */
export const RTMGRP_IPV4_IFADDR = 0x10
export const RTMGRP_IPV4_ROUTE = 0x40
export const RTMGRP_IPV6_IFADDR = 0x100
export const RTMGRP_IPV6_ROUTE = 0x400

export const AF_UNSPEC = 0
export const AF_INET = 2
export const AF_INET6 = 10

// ifaddrmsg attributes
export const IFA_ADDRESS = 1
export const IFA_LOCAL = 2
export const IFA_LABEL = 3
export const IFA_FLAGS = 8

// rtmsg attributes
export const RTA_DST = 1
export const RTA_OIF = 4
export const RTA_GATEWAY = 5
export const RTA_PRIORITY = 6
export const RTA_MULTIPATH = 9
export const RTA_TABLE = 15
export const RTA_VIA = 18

/** rtm_flags / rtnh_flags: the gateway is on-link even if no prefix covers it. */
export const RTNH_F_ONLINK = 0x4

// rtm_type
export const RTN_UNICAST = 1
export const RTN_LOCAL = 2
export const RTN_BLACKHOLE = 6
export const RTN_UNREACHABLE = 7

export const RT_SCOPE_UNIVERSE = 0
export const RT_SCOPE_LINK = 253
export const RT_SCOPE_HOST = 254

// nlmsgerr extended-ACK attributes
export const NLMSGERR_ATTR_MSG = 1

export const NLMSG_HDRLEN = 16
const IFADDRMSG_LEN = 8
const RTMSG_LEN = 12
const RTNEXTHOP_LEN = 8
const RTA_HDRLEN = 4
/** The type field's top bits are NLA_F_NESTED and NLA_F_NET_BYTEORDER. */
const NLA_TYPE_MASK = 0x3fff

/** Netlink speaks host byte order; computed once, without I/O. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

export const align4 = (n: number): number => (n + 3) & ~3

/**
 * Why bytes did not decode. A plain tagged object rather than an Error: decoders run on untrusted input in bulk, and
 * capturing a stack trace per malformed message would cost more than the decoding.
 */
export interface NetlinkParseError {
  readonly _tag: "NetlinkParseError"
  readonly reason:
    | "truncated"
    | "bad-length"
    | "unexpected-type"
    | "unsupported-family"
    | "bad-address"
    | "missing-address"
  /** Byte offset of the offending structure, relative to the view the failing decoder was given. */
  readonly offset: number
  readonly message: string
}

const fail = (reason: NetlinkParseError["reason"], offset: number, message: string) =>
  Either.left<NetlinkParseError>({ _tag: "NetlinkParseError", reason, offset, message })

export interface Message {
  readonly type: number
  readonly flags: number
  readonly seq: number
  readonly pid: number
  /** The bytes after the 16-byte header, up to nlmsg_len (a view, not a copy). */
  readonly payload: Uint8Array
}

export interface Attribute {
  /** Attribute type without the NLA_F_NESTED / NLA_F_NET_BYTEORDER bits. */
  readonly type: number
  readonly data: Uint8Array
}

const view = (bytes: Uint8Array) => new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)

/**
 * Splits one received datagram into messages. A datagram holds whole messages, each aligned to 4 bytes; the last
 * one's padding may be missing.
 */
export const splitMessages = (bytes: Uint8Array): Either.Either<Array<Message>, NetlinkParseError> => {
  const dv = view(bytes)
  const out: Array<Message> = []
  let off = 0
  while (off < bytes.length) {
    if (bytes.length - off < NLMSG_HDRLEN) {
      return fail("truncated", off, `${bytes.length - off} bytes left, a netlink header needs ${NLMSG_HDRLEN}`)
    }
    const len = dv.getUint32(off, LITTLE_ENDIAN)
    if (len < NLMSG_HDRLEN) return fail("bad-length", off, `nlmsg_len ${len} is shorter than the header`)
    if (len > bytes.length - off) {
      return fail("truncated", off, `nlmsg_len ${len} runs past the end (${bytes.length - off} bytes left)`)
    }
    out.push({
      type: dv.getUint16(off + 4, LITTLE_ENDIAN),
      flags: dv.getUint16(off + 6, LITTLE_ENDIAN),
      seq: dv.getUint32(off + 8, LITTLE_ENDIAN),
      pid: dv.getUint32(off + 12, LITTLE_ENDIAN),
      payload: bytes.subarray(off + NLMSG_HDRLEN, off + len)
    })
    off += align4(len)
  }
  return Either.right(out)
}

/** Walks the rtattr list in `bytes` (the tail of a message after its fixed header). */
export const attributes = (bytes: Uint8Array): Either.Either<Array<Attribute>, NetlinkParseError> => {
  const dv = view(bytes)
  const out: Array<Attribute> = []
  let off = 0
  while (off < bytes.length) {
    if (bytes.length - off < RTA_HDRLEN) {
      return fail("truncated", off, `${bytes.length - off} bytes left, an attribute header needs ${RTA_HDRLEN}`)
    }
    const len = dv.getUint16(off, LITTLE_ENDIAN)
    if (len < RTA_HDRLEN) return fail("bad-length", off, `rta_len ${len} is shorter than the attribute header`)
    if (len > bytes.length - off) {
      return fail("truncated", off, `rta_len ${len} runs past the end (${bytes.length - off} bytes left)`)
    }
    out.push({ type: dv.getUint16(off + 2, LITTLE_ENDIAN) & NLA_TYPE_MASK, data: bytes.subarray(off + 4, off + len) })
    off += align4(len)
  }
  return Either.right(out)
}

export interface ErrorReply {
  /** 0 for an ACK, else the positive errno of the failed request. */
  readonly errno: number
  /** Header fields of the request this answers. */
  readonly requestType: number
  readonly requestSeq: number
  /** NLMSGERR_ATTR_MSG from an extended ACK (empty when the kernel gave none). */
  readonly message: string
}

/** Decodes the payload of an NLMSG_ERROR message (struct nlmsgerr, then optional extended-ACK attributes). */
export const parseError = (msg: Message): Either.Either<ErrorReply, NetlinkParseError> => {
  if (msg.type !== NLMSG_ERROR) return fail("unexpected-type", 0, `message type ${msg.type} is not NLMSG_ERROR`)
  const p = msg.payload
  if (p.length < 4 + NLMSG_HDRLEN) {
    return fail("truncated", 0, `nlmsgerr needs ${4 + NLMSG_HDRLEN} bytes, got ${p.length}`)
  }
  const dv = view(p)
  const error = dv.getInt32(0, LITTLE_ENDIAN)
  const requestLen = dv.getUint32(4, LITTLE_ENDIAN)
  const requestType = dv.getUint16(8, LITTLE_ENDIAN)
  const requestSeq = dv.getUint32(12, LITTLE_ENDIAN)
  let message = ""
  if ((msg.flags & NLM_F_ACK_TLVS) !== 0) {
    // The request is quoted whole unless NLM_F_CAPPED (always capped for an ACK of a successful request).
    const quoted = (msg.flags & NLM_F_CAPPED) !== 0 ? NLMSG_HDRLEN : align4(requestLen)
    const start = 4 + quoted
    if (quoted < NLMSG_HDRLEN || start > p.length) {
      return fail("bad-length", 4, `quoted request length ${requestLen} does not fit the error message`)
    }
    const attrs = attributes(p.subarray(start))
    if (Either.isLeft(attrs)) return Either.left(attrs.left)
    for (const a of attrs.right) {
      if (a.type === NLMSGERR_ATTR_MSG) message = cString(a.data)
    }
  }
  // The kernel sends -errno; a positive value is not something it sends, keep it as is rather than guess.
  return Either.right({ errno: error < 0 ? -error : error, requestType, requestSeq, message })
}

const cString = (data: Uint8Array): string => {
  let end = 0
  while (end < data.length && data[end] !== 0) end++
  let s = ""
  for (let i = 0; i < end; i++) s += String.fromCharCode(data[i]!)
  return s
}

/** Writes a 16-byte nlmsghdr at the start of `out`. */
const writeHeader = (out: Uint8Array, type: number, flags: number, seq: number) => {
  const dv = view(out)
  dv.setUint32(0, out.length, LITTLE_ENDIAN)
  dv.setUint16(4, type, LITTLE_ENDIAN)
  dv.setUint16(6, flags, LITTLE_ENDIAN)
  dv.setUint32(8, seq >>> 0, LITTLE_ENDIAN)
  dv.setUint32(12, 0, LITTLE_ENDIAN) // nlmsg_pid 0: addressed to the kernel
}

const writeAttr = (out: Uint8Array, off: number, type: number, data: Uint8Array): number => {
  const dv = view(out)
  dv.setUint16(off, RTA_HDRLEN + data.length, LITTLE_ENDIAN)
  dv.setUint16(off + 2, type, LITTLE_ENDIAN)
  out.set(data, off + RTA_HDRLEN)
  return off + align4(RTA_HDRLEN + data.length)
}

/** Sets nlmsg_seq of the message at the start of `msg` (in place) and returns it. */
export const withSeq = (msg: Uint8Array, seq: number): Uint8Array => {
  if (msg.length >= NLMSG_HDRLEN) view(msg).setUint32(8, seq >>> 0, LITTLE_ENDIAN)
  return msg
}

export interface NewAddress {
  readonly family: 4 | 6
  readonly ifindex: number
  /** 4 or 16 bytes, network order */
  readonly addr: Uint8Array
  readonly prefix: number
  readonly seq: number
}

/**
 * RTM_NEWADDR with NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, as `ip address add` sends it: IFA_LOCAL and IFA_ADDRESS
 * both carry the address (no peer), scope universe (the kernel derives link-local scope for fe80::/10 itself).
 * Returns undefined when the address length does not match the family or the prefix is out of range.
 */
export const buildNewAddr = (a: NewAddress): Uint8Array | undefined => {
  const alen = a.family === 4 ? 4 : 16
  if (a.addr.length !== alen || !Number.isInteger(a.prefix) || a.prefix < 0 || a.prefix > alen * 8) return undefined
  const attr = align4(RTA_HDRLEN + alen)
  const out = new Uint8Array(NLMSG_HDRLEN + IFADDRMSG_LEN + 2 * attr)
  writeHeader(out, RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, a.seq)
  const dv = view(out)
  out[16] = a.family === 4 ? AF_INET : AF_INET6 // ifa_family
  out[17] = a.prefix // ifa_prefixlen
  out[18] = 0 // ifa_flags
  out[19] = RT_SCOPE_UNIVERSE // ifa_scope
  dv.setUint32(20, a.ifindex >>> 0, LITTLE_ENDIAN) // ifa_index
  let off = NLMSG_HDRLEN + IFADDRMSG_LEN
  off = writeAttr(out, off, IFA_LOCAL, a.addr)
  writeAttr(out, off, IFA_ADDRESS, a.addr)
  return out
}

/** RTM_GETADDR dump request; `family` AF_UNSPEC dumps IPv4 and IPv6. A full ifaddrmsg, as strict checking wants. */
export const buildGetAddrDump = (seq: number, family: number = AF_UNSPEC): Uint8Array => {
  const out = new Uint8Array(NLMSG_HDRLEN + IFADDRMSG_LEN)
  writeHeader(out, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq)
  out[16] = family
  return out
}

/** RTM_GETROUTE dump request (all tables) with a zeroed rtmsg. */
export const buildGetRouteDump = (seq: number, family: number = AF_UNSPEC): Uint8Array => {
  const out = new Uint8Array(NLMSG_HDRLEN + RTMSG_LEN)
  writeHeader(out, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq)
  out[16] = family
  return out
}

export interface AddressInfo {
  readonly family: 4 | 6
  readonly ifindex: number
  readonly prefix: number
  /** IFA_LOCAL when present (the local end on a point-to-point link), else IFA_ADDRESS; 4 or 16 bytes (copies). */
  readonly addr: Uint8Array
  readonly scope: number
  /** IFA_FLAGS when present (it carries bits above 8), else ifa_flags (IFA_F_TENTATIVE, IFA_F_DEPRECATED, ...). */
  readonly flags: number
}

const familyOf = (af: number): 4 | 6 | undefined => (af === AF_INET ? 4 : af === AF_INET6 ? 6 : undefined)

/** Decodes RTM_NEWADDR / RTM_DELADDR. */
export const parseAddress = (msg: Message): Either.Either<AddressInfo, NetlinkParseError> => {
  if (msg.type !== RTM_NEWADDR && msg.type !== RTM_DELADDR) {
    return fail("unexpected-type", 0, `message type ${msg.type} is not RTM_NEWADDR/RTM_DELADDR`)
  }
  const p = msg.payload
  if (p.length < IFADDRMSG_LEN) return fail("truncated", 0, `ifaddrmsg needs ${IFADDRMSG_LEN} bytes, got ${p.length}`)
  const dv = view(p)
  const family = familyOf(p[0]!)
  if (family === undefined) return fail("unsupported-family", 0, `address family ${p[0]}`)
  const alen = family === 4 ? 4 : 16
  const prefix = p[1]!
  if (prefix > alen * 8) return fail("bad-address", 1, `prefix length ${prefix} for IPv${family}`)
  let flags = p[2]!
  const scope = p[3]!
  const ifindex = dv.getUint32(4, LITTLE_ENDIAN)
  const attrs = attributes(p.subarray(IFADDRMSG_LEN))
  if (Either.isLeft(attrs)) return Either.left(attrs.left)
  let local: Uint8Array | undefined
  let address: Uint8Array | undefined
  for (const a of attrs.right) {
    if (a.type === IFA_LOCAL || a.type === IFA_ADDRESS) {
      if (a.data.length !== alen) {
        return fail("bad-address", 0, `attribute ${a.type} has ${a.data.length} bytes, IPv${family} needs ${alen}`)
      }
      if (a.type === IFA_LOCAL) local = a.data
      else address = a.data
    } else if (a.type === IFA_FLAGS && a.data.length >= 4) {
      flags = view(a.data).getUint32(0, LITTLE_ENDIAN)
    }
  }
  const addr = local ?? address
  if (addr === undefined) return fail("missing-address", 0, "neither IFA_LOCAL nor IFA_ADDRESS")
  return Either.right({ family, ifindex, prefix, addr: addr.slice(), scope, flags })
}

export interface Gateway {
  readonly family: 4 | 6
  /** 4 or 16 bytes (a copy) */
  readonly addr: Uint8Array
}

export interface Nexthop {
  readonly oif: number
  readonly flags: number
  readonly gateway: Gateway | null
}

export interface RouteInfo {
  readonly family: 4 | 6
  /** RTA_TABLE when present (tables above 255), else rtm_table. */
  readonly table: number
  /** rtm_type: RTN_UNICAST, RTN_LOCAL, RTN_BLACKHOLE, ... */
  readonly type: number
  readonly protocol: number
  readonly scope: number
  readonly tos: number
  /** 4 or 16 bytes (a copy); all zero for a default route (no RTA_DST). */
  readonly dst: Uint8Array
  readonly dstLen: number
  /** RTA_GATEWAY (same family as the route), or RTA_VIA (e.g. an IPv4 gateway of an IPv6 route); null if none. */
  readonly gateway: Gateway | null
  /** RTA_OIF, 0 when absent (multipath routes carry theirs in `nexthops`). */
  readonly oif: number
  /** RTA_PRIORITY (the metric), 0 when absent. */
  readonly priority: number
  /** rtm_flags */
  readonly flags: number
  /** RTNH_F_ONLINK in rtm_flags (`ip route ... onlink`). */
  readonly onlink: boolean
  /** RTA_MULTIPATH entries, empty for a single-path route. */
  readonly nexthops: ReadonlyArray<Nexthop>
}

/** RTA_GATEWAY carries an address of the route's family; RTA_VIA a struct rtvia (u16 family + address). */
const gatewayOf = (a: Attribute, family: 4 | 6): Either.Either<Gateway, NetlinkParseError> => {
  if (a.type === RTA_GATEWAY) {
    const alen = family === 4 ? 4 : 16
    if (a.data.length !== alen) return fail("bad-address", 0, `RTA_GATEWAY has ${a.data.length} bytes`)
    return Either.right({ family, addr: a.data.slice() })
  }
  if (a.data.length < 2) return fail("truncated", 0, "RTA_VIA shorter than its family field")
  const viaFamily = familyOf(view(a.data).getUint16(0, LITTLE_ENDIAN))
  if (viaFamily === undefined) return fail("unsupported-family", 0, "RTA_VIA family")
  const addr = a.data.subarray(2)
  if (addr.length !== (viaFamily === 4 ? 4 : 16)) return fail("bad-address", 2, `RTA_VIA has ${addr.length} bytes`)
  return Either.right({ family: viaFamily, addr: addr.slice() })
}

const parseMultipath = (
  data: Uint8Array,
  family: 4 | 6
): Either.Either<Array<Nexthop>, NetlinkParseError> => {
  const dv = view(data)
  const out: Array<Nexthop> = []
  let off = 0
  while (off < data.length) {
    if (data.length - off < RTNEXTHOP_LEN) return fail("truncated", off, "rtnexthop header")
    const len = dv.getUint16(off, LITTLE_ENDIAN)
    if (len < RTNEXTHOP_LEN) return fail("bad-length", off, `rtnh_len ${len}`)
    if (len > data.length - off) return fail("truncated", off, `rtnh_len ${len} runs past RTA_MULTIPATH`)
    const flags = data[off + 2]!
    const oif = dv.getInt32(off + 4, LITTLE_ENDIAN)
    const attrs = attributes(data.subarray(off + RTNEXTHOP_LEN, off + len))
    if (Either.isLeft(attrs)) return Either.left(attrs.left)
    let gateway: Gateway | null = null
    for (const a of attrs.right) {
      if (a.type === RTA_GATEWAY || a.type === RTA_VIA) {
        const g = gatewayOf(a, family)
        if (Either.isLeft(g)) return Either.left(g.left)
        gateway = g.right
      }
    }
    out.push({ oif: oif < 0 ? 0 : oif, flags, gateway })
    off += align4(len)
  }
  return Either.right(out)
}

/** Decodes RTM_NEWROUTE / RTM_DELROUTE. */
export const parseRoute = (msg: Message): Either.Either<RouteInfo, NetlinkParseError> => {
  if (msg.type !== RTM_NEWROUTE && msg.type !== RTM_DELROUTE) {
    return fail("unexpected-type", 0, `message type ${msg.type} is not RTM_NEWROUTE/RTM_DELROUTE`)
  }
  const p = msg.payload
  if (p.length < RTMSG_LEN) return fail("truncated", 0, `rtmsg needs ${RTMSG_LEN} bytes, got ${p.length}`)
  const dv = view(p)
  const family = familyOf(p[0]!)
  if (family === undefined) return fail("unsupported-family", 0, `route family ${p[0]}`)
  const alen = family === 4 ? 4 : 16
  const dstLen = p[1]!
  if (dstLen > alen * 8) return fail("bad-address", 1, `destination length ${dstLen} for IPv${family}`)
  const tos = p[3]!
  let table = p[4]!
  const protocol = p[5]!
  const scope = p[6]!
  const type = p[7]!
  const flags = dv.getUint32(8, LITTLE_ENDIAN)
  const attrs = attributes(p.subarray(RTMSG_LEN))
  if (Either.isLeft(attrs)) return Either.left(attrs.left)
  let dst = new Uint8Array(alen)
  let gateway: Gateway | null = null
  let oif = 0
  let priority = 0
  let nexthops: Array<Nexthop> = []
  for (const a of attrs.right) {
    switch (a.type) {
      case RTA_DST:
        if (a.data.length !== alen) return fail("bad-address", 0, `RTA_DST has ${a.data.length} bytes`)
        dst = a.data.slice()
        break
      case RTA_GATEWAY:
      case RTA_VIA: {
        const g = gatewayOf(a, family)
        if (Either.isLeft(g)) return Either.left(g.left)
        gateway = g.right
        break
      }
      case RTA_OIF:
        if (a.data.length < 4) return fail("truncated", 0, "RTA_OIF shorter than 4 bytes")
        oif = view(a.data).getUint32(0, LITTLE_ENDIAN)
        break
      case RTA_PRIORITY:
        if (a.data.length < 4) return fail("truncated", 0, "RTA_PRIORITY shorter than 4 bytes")
        priority = view(a.data).getUint32(0, LITTLE_ENDIAN)
        break
      case RTA_TABLE:
        if (a.data.length < 4) return fail("truncated", 0, "RTA_TABLE shorter than 4 bytes")
        table = view(a.data).getUint32(0, LITTLE_ENDIAN)
        break
      case RTA_MULTIPATH: {
        const hops = parseMultipath(a.data, family)
        if (Either.isLeft(hops)) return Either.left(hops.left)
        nexthops = hops.right
        break
      }
    }
  }
  return Either.right({
    family,
    table,
    type,
    protocol,
    scope,
    tos,
    dst,
    dstLen,
    gateway,
    oif,
    priority,
    flags,
    onlink: (flags & RTNH_F_ONLINK) !== 0,
    nexthops
  })
}

/** Test and tooling helper: an RTM_NEWROUTE/RTM_DELROUTE message as the kernel sends it in a dump. */
export interface RouteMessageSpec {
  readonly type: typeof RTM_NEWROUTE | typeof RTM_DELROUTE
  readonly seq: number
  readonly route: RouteInfo
}

/**
 * Encodes a route the way the kernel does (rtm_table = the table, or 252 = RT_TABLE_COMPAT above 255, plus
 * RTA_TABLE; RTA_DST only for a non-default route; RTA_VIA when the gateway family differs). The inverse of
 * `parseRoute`.
 */
export const buildRoute = (spec: RouteMessageSpec): Uint8Array => {
  const r = spec.route
  const parts: Array<[number, Uint8Array]> = []
  const u32 = (v: number) => {
    const b = new Uint8Array(4)
    view(b).setUint32(0, v >>> 0, LITTLE_ENDIAN)
    return b
  }
  const gatewayAttr = (g: Gateway): [number, Uint8Array] => {
    if (g.family === r.family) return [RTA_GATEWAY, g.addr]
    const via = new Uint8Array(2 + g.addr.length)
    view(via).setUint16(0, g.family === 4 ? AF_INET : AF_INET6, LITTLE_ENDIAN)
    via.set(g.addr, 2)
    return [RTA_VIA, via]
  }
  parts.push([RTA_TABLE, u32(r.table)])
  if (r.dstLen > 0) parts.push([RTA_DST, r.dst])
  if (r.priority !== 0) parts.push([RTA_PRIORITY, u32(r.priority)])
  if (r.gateway !== null) parts.push(gatewayAttr(r.gateway))
  if (r.oif !== 0) parts.push([RTA_OIF, u32(r.oif)])
  if (r.nexthops.length > 0) {
    const hops: Array<Uint8Array> = []
    for (const h of r.nexthops) {
      const attrs: Array<[number, Uint8Array]> = h.gateway === null ? [] : [gatewayAttr(h.gateway)]
      const len = RTNEXTHOP_LEN + attrs.reduce((n, [, d]) => n + align4(RTA_HDRLEN + d.length), 0)
      const hop = new Uint8Array(len)
      const dv = view(hop)
      dv.setUint16(0, len, LITTLE_ENDIAN)
      hop[2] = h.flags
      dv.setInt32(4, h.oif, LITTLE_ENDIAN)
      let off = RTNEXTHOP_LEN
      for (const [t, d] of attrs) off = writeAttr(hop, off, t, d)
      hops.push(hop)
    }
    const total = hops.reduce((n, h) => n + align4(h.length), 0)
    const mp = new Uint8Array(total)
    let off = 0
    for (const h of hops) {
      mp.set(h, off)
      off += align4(h.length)
    }
    parts.push([RTA_MULTIPATH, mp])
  }
  const size = NLMSG_HDRLEN + RTMSG_LEN + parts.reduce((n, [, d]) => n + align4(RTA_HDRLEN + d.length), 0)
  const out = new Uint8Array(size)
  writeHeader(out, spec.type, NLM_F_MULTI, spec.seq)
  out[16] = r.family === 4 ? AF_INET : AF_INET6
  out[17] = r.dstLen
  out[18] = 0
  out[19] = r.tos
  out[20] = r.table < 256 ? r.table : 252
  out[21] = r.protocol
  out[22] = r.scope
  out[23] = r.type
  view(out).setUint32(24, r.flags >>> 0, LITTLE_ENDIAN)
  let off = NLMSG_HDRLEN + RTMSG_LEN
  for (const [t, d] of parts) off = writeAttr(out, off, t, d)
  return out
}
