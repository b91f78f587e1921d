import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import * as Netlink from "../../src/domain/Netlink.js"

// Golden bytes are written field by field from the uapi structs (x86_64, little-endian host order):
// nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid }, ifaddrmsg { u8 family, prefixlen, flags, scope;
// u32 index }, rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags },
// rtattr { u16 len; u16 type } + data padded to 4, nlmsgerr { s32 error; nlmsghdr msg } + optional TLVs.
const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/[^0-9a-f]/gi, ""), "hex"))
const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString("hex")

const right = <A>(e: Either.Either<A, Netlink.NetlinkParseError>): A => {
  if (Either.isLeft(e)) throw new Error(`expected a value, got ${e.left.reason}: ${e.left.message}`)
  return e.right
}
const left = <A>(e: Either.Either<A, Netlink.NetlinkParseError>): Netlink.NetlinkParseError => {
  if (Either.isRight(e)) throw new Error(`expected an error, got ${JSON.stringify(e.right)}`)
  return e.left
}
const single = (bytes: Uint8Array): Netlink.Message => {
  const msgs = right(Netlink.splitMessages(bytes))
  expect(msgs).toHaveLength(1)
  return msgs[0]!
}

/** One message of `type` around the hex `body`, nlmsg_len computed. */
const withHeader = (type: number, body: string): Netlink.Message => {
  const payload = fromHex(body)
  const out = new Uint8Array(16 + payload.length)
  const dv = new DataView(out.buffer)
  dv.setUint32(0, out.length, true)
  dv.setUint16(4, type, true)
  out.set(payload, 16)
  return single(out)
}

const V6_1 = "20010db8000100000000000000000001" // 2001:db8:1::1

describe("Netlink builders", () => {
  it("RTM_NEWADDR for 198.51.100.1/24 on ifindex 7 matches the hand-built bytes", () => {
    const msg = Netlink.buildNewAddr({
      family: 4,
      ifindex: 7,
      addr: new Uint8Array([198, 51, 100, 1]),
      prefix: 24,
      seq: 42
    })
    expect(hex(msg!)).toBe(hex(fromHex(
      "28000000 1400 0506 2a000000 00000000" + // len 40, RTM_NEWADDR, REQUEST|ACK|EXCL|CREATE, seq 42, pid 0
        "02 18 00 00 07000000" + // AF_INET, /24, flags 0, scope universe, ifindex 7
        "0800 0200 c6336401" + // IFA_LOCAL 198.51.100.1
        "0800 0100 c6336401" // IFA_ADDRESS 198.51.100.1
    )))
  })

  it("RTM_NEWADDR for 2001:db8:1::1/64 on ifindex 3 matches the hand-built bytes", () => {
    const msg = Netlink.buildNewAddr({ family: 6, ifindex: 3, addr: fromHex(V6_1), prefix: 64, seq: 1 })
    expect(hex(msg!)).toBe(hex(fromHex(
      "40000000 1400 0506 01000000 00000000" +
        "0a 40 00 00 03000000" +
        "1400 0200" + V6_1 +
        "1400 0100" + V6_1
    )))
  })

  it("RTM_NEWADDR refuses a wrong address length or prefix instead of building garbage", () => {
    const base = { family: 4 as const, ifindex: 1, addr: new Uint8Array(4), prefix: 24, seq: 1 }
    expect(Netlink.buildNewAddr({ ...base, addr: new Uint8Array(16) })).toBeUndefined()
    expect(Netlink.buildNewAddr({ ...base, prefix: 33 })).toBeUndefined()
    expect(Netlink.buildNewAddr({ ...base, family: 6, prefix: 129, addr: new Uint8Array(16) })).toBeUndefined()
    expect(Netlink.buildNewAddr({ ...base, family: 6, prefix: 128, addr: new Uint8Array(16) })).toBeDefined()
  })

  it("withSeq rewrites nlmsg_seq in place and nothing else", () => {
    const msg = Netlink.buildGetAddrDump(1)
    const before = hex(msg)
    expect(Netlink.withSeq(msg, 0x01020304)).toBe(msg)
    expect(hex(msg)).toBe(before.slice(0, 16) + "04030201" + before.slice(24))
  })

  it("dump requests carry NLM_F_REQUEST | NLM_F_DUMP and a zeroed family header", () => {
    expect(hex(Netlink.buildGetAddrDump(5))).toBe(
      hex(fromHex("18000000 1600 0103 05000000 00000000" + "00 00 00 00 00000000"))
    )
    expect(hex(Netlink.buildGetRouteDump(6, Netlink.AF_INET))).toBe(
      hex(fromHex("1c000000 1a00 0103 06000000 00000000" + "02 00 00 00 00 00 00 00 00000000"))
    )
  })
})

describe("Netlink.splitMessages", () => {
  it("splits a datagram of several messages and honours 4-byte alignment", () => {
    // RTM_NEWADDR with a 3-byte IFA_LABEL "lo" (len 7, padded to 8), then NLMSG_DONE (with its int payload)
    const datagram = fromHex(
      "28000000 1400 0200 09000000 39300000" + // len 40, RTM_NEWADDR, NLM_F_MULTI, seq 9, pid 12345
        "02 08 80 fe 01000000" + // AF_INET, /8, IFA_F_PERMANENT, scope host, lo
        "0800 0200 7f000001" + // IFA_LOCAL 127.0.0.1
        "0700 0300 6c6f00 00" + // IFA_LABEL "lo\0" + pad
        "14000000 0300 0200 09000000 39300000 00000000" // NLMSG_DONE
    )
    const msgs = right(Netlink.splitMessages(datagram))
    expect(msgs.map((m) => [m.type, m.flags, m.seq, m.pid, m.payload.length])).toEqual([
      [Netlink.RTM_NEWADDR, Netlink.NLM_F_MULTI, 9, 12345, 24],
      [Netlink.NLMSG_DONE, Netlink.NLM_F_MULTI, 9, 12345, 4]
    ])
    const a = right(Netlink.parseAddress(msgs[0]!))
    expect(a).toEqual({
      family: 4,
      ifindex: 1,
      prefix: 8,
      addr: new Uint8Array([127, 0, 0, 1]),
      scope: 254,
      flags: 0x80
    })
  })

  it("accepts a last message without its trailing padding", () => {
    const msg = fromHex("11000000 0300 0000 01000000 00000000 ff")
    expect(right(Netlink.splitMessages(msg))[0]!.payload.length).toBe(1)
  })

  it("reports short, undersized and overlong headers as typed errors", () => {
    expect(left(Netlink.splitMessages(fromHex("10000000 0300"))).reason).toBe("truncated")
    expect(left(Netlink.splitMessages(fromHex("0c000000 0300 0000 00000000 00000000"))).reason).toBe("bad-length")
    expect(left(Netlink.splitMessages(fromHex("20000000 0300 0000 00000000 00000000"))).reason).toBe("truncated")
    // the second message is the broken one: its offset is reported
    const e = left(Netlink.splitMessages(fromHex("10000000 0300 0000 00000000 00000000" + "ff000000")))
    expect(e.offset).toBe(16)
  })

  it("an empty datagram holds no message", () => {
    expect(right(Netlink.splitMessages(new Uint8Array(0)))).toEqual([])
  })
})

describe("Netlink.attributes", () => {
  it("masks NLA_F_NESTED / NLA_F_NET_BYTEORDER out of the type", () => {
    const attrs = right(Netlink.attributes(fromHex("0800 0980 01020304" + "0500 0340 aa 000000")))
    expect(attrs.map((a) => [a.type, hex(a.data)])).toEqual([[9, "01020304"], [3, "aa"]])
  })

  it("rejects rta_len below the header and attributes running past the end", () => {
    expect(left(Netlink.attributes(fromHex("0200 0100"))).reason).toBe("bad-length")
    expect(left(Netlink.attributes(fromHex("0c00 0100 01020304"))).reason).toBe("truncated")
    expect(left(Netlink.attributes(fromHex("08"))).reason).toBe("truncated")
  })
})

describe("Netlink.parseError", () => {
  it("an ACK is errno 0 and names the request it answers", () => {
    const m = single(fromHex(
      "24000000 0200 0001 2a000000 00000000" + // NLMSG_ERROR, NLM_F_CAPPED, seq 42
        "00000000" + // error 0
        "28000000 1400 0506 2a000000 00000000" // the request's header
    ))
    expect(right(Netlink.parseError(m))).toEqual({ errno: 0, requestType: 20, requestSeq: 42, message: "" })
  })

  it("a refusal carries the positive errno and the extended-ACK text", () => {
    const text = Buffer.from("ipv4: Address already assigned\0")
    const attrLen = 4 + text.length
    const tlv = new Uint8Array(Netlink.align4(attrLen))
    tlv.set([attrLen & 255, attrLen >> 8, Netlink.NLMSGERR_ATTR_MSG, 0], 0)
    tlv.set(text, 4)
    const body = fromHex(
      "efffffff" + // -17 = -EEXIST
        "28000000 1400 0506 07000000 00000000" // quoted header (capped)
    )
    const len = 16 + body.length + tlv.length
    const head = fromHex(`${len.toString(16).padStart(2, "0")}000000 0200 0003 07000000 00000000`) // CAPPED|ACK_TLVS
    const m = single(new Uint8Array([...head, ...body, ...tlv]))
    expect(right(Netlink.parseError(m))).toEqual({
      errno: 17,
      requestType: 20,
      requestSeq: 7,
      message: "ipv4: Address already assigned"
    })
  })

  it("an uncapped error quotes the whole request before the TLVs", () => {
    const request = Netlink.buildGetAddrDump(3) // 24 bytes
    const tlv = fromHex("0800 0100 6f6b0000") // NLMSGERR_ATTR_MSG "ok"
    const len = 16 + 4 + request.length + tlv.length
    const m = single(new Uint8Array([
      ...fromHex(`${len.toString(16)}000000 0200 0002 03000000 00000000 eaffffff`), // ACK_TLVS only, -EINVAL
      ...request,
      ...tlv
    ]))
    expect(right(Netlink.parseError(m))).toMatchObject({ errno: 22, requestType: Netlink.RTM_GETADDR, message: "ok" })
  })

  it("rejects a short payload and other message types", () => {
    expect(left(Netlink.parseError(single(fromHex("14000000 0200 0000 00000000 00000000 00000000")))).reason).toBe(
      "truncated"
    )
    expect(left(Netlink.parseError(single(fromHex("10000000 0300 0000 00000000 00000000")))).reason).toBe(
      "unexpected-type"
    )
  })
})

describe("Netlink.parseAddress", () => {
  it("decodes an IPv6 RTM_DELADDR with IFA_FLAGS overriding ifa_flags", () => {
    const m = single(fromHex(
      "34000000 1500 0000 00000000 00000000" + // RTM_DELADDR, notification (seq 0)
        "0a 40 40 00 05000000" + // AF_INET6, /64, ifa_flags IFA_F_TENTATIVE, scope universe, ifindex 5
        "1400 0100" + V6_1 + // IFA_ADDRESS
        "0800 0800 40020000" // IFA_FLAGS 0x240 (TENTATIVE | NOPREFIXROUTE)
    ))
    expect(right(Netlink.parseAddress(m))).toEqual({
      family: 6,
      ifindex: 5,
      prefix: 64,
      addr: fromHex(V6_1),
      scope: 0,
      flags: 0x240
    })
  })

  it("prefers IFA_LOCAL over IFA_ADDRESS (point-to-point peers)", () => {
    const m = single(fromHex(
      "28000000 1400 0000 00000000 00000000" +
        "02 20 00 00 02000000" +
        "0800 0100 c0000202" + // IFA_ADDRESS = the peer 192.0.2.2
        "0800 0200 c0000201" // IFA_LOCAL = 192.0.2.1
    ))
    expect(Array.from(right(Netlink.parseAddress(m)).addr)).toEqual([192, 0, 2, 1])
  })

  it("reports unsupported families, bad lengths, bad prefixes and missing addresses", () => {
    const msg = (body: string) => withHeader(Netlink.RTM_NEWADDR, body)
    expect(left(Netlink.parseAddress(msg("11 00 00 00 01000000"))).reason).toBe("unsupported-family")
    expect(left(Netlink.parseAddress(msg("02 18 00 00 01000000 0600 0200 c000"))).reason).toBe("bad-address")
    expect(left(Netlink.parseAddress(msg("02 21 00 00 01000000 0800 0200 c0000201"))).reason).toBe("bad-address")
    expect(left(Netlink.parseAddress(msg("02 18 00 00 01000000 0600 0300 6c6f0000"))).reason).toBe(
      "missing-address"
    )
    expect(left(Netlink.parseAddress(msg("02 18 00"))).reason).toBe("truncated")
    expect(left(Netlink.parseAddress({ ...msg("02 18 00 00 01000000"), type: Netlink.RTM_NEWROUTE })).reason).toBe(
      "unexpected-type"
    )
  })
})

describe("Netlink.parseRoute", () => {
  it("decodes `198.51.100.0/24 via 192.0.2.9 dev 5 onlink table 1000 proto static metric 100`", () => {
    const m = single(fromHex(
      "44000000 1800 0200 01000000 00000000" + // RTM_NEWROUTE, NLM_F_MULTI, seq 1
        "02 18 00 00 fc 04 00 01 04000000" + // AF_INET, /24, tos 0, table 252 (COMPAT), static, universe,
        //                                      unicast, RTNH_F_ONLINK
        "0800 0f00 e8030000" + // RTA_TABLE 1000
        "0800 0100 c6336400" + // RTA_DST
        "0800 0600 64000000" + // RTA_PRIORITY 100
        "0800 0500 c0000209" + // RTA_GATEWAY
        "0800 0400 05000000" // RTA_OIF 5
    ))
    expect(right(Netlink.parseRoute(m))).toEqual({
      family: 4,
      table: 1000,
      type: Netlink.RTN_UNICAST,
      protocol: 4,
      scope: 0,
      tos: 0,
      dst: new Uint8Array([198, 51, 100, 0]),
      dstLen: 24,
      gateway: { family: 4, addr: new Uint8Array([192, 0, 2, 9]) },
      oif: 5,
      priority: 100,
      flags: 4,
      onlink: true,
      nexthops: []
    })
  })

  it("decodes an IPv6 route with an IPv4 gateway in RTA_VIA", () => {
    const m = single(fromHex(
      "44000000 1800 0000 00000000 00000000" +
        "0a 30 00 00 2c 03 00 01 00000000" + // AF_INET6, /48, table 44, boot
        "1400 0100 20010db8000500000000000000000000" + // RTA_DST 2001:db8:5::
        "0a00 1200 0200 c0000207 0000" + // RTA_VIA { AF_INET, 192.0.2.7 } + pad
        "0800 0400 05000000" // RTA_OIF 5
    ))
    const r = right(Netlink.parseRoute(m))
    expect(r.family).toBe(6)
    expect(r.table).toBe(44)
    expect(r.dstLen).toBe(48)
    expect(r.gateway).toEqual({ family: 4, addr: new Uint8Array([192, 0, 2, 7]) })
    expect(r.oif).toBe(5)
    expect(r.onlink).toBe(false)
  })

  it("a default route has an all-zero destination and no gateway when none is given", () => {
    // main table, boot, scope link, unicast; RTA_OIF 2
    const m = withHeader(Netlink.RTM_NEWROUTE, "02 00 00 00 fe 03 fd 01 00000000 0800 0400 02000000")
    const r = right(Netlink.parseRoute(m))
    expect(Array.from(r.dst)).toEqual([0, 0, 0, 0])
    expect(r.dstLen).toBe(0)
    expect(r.gateway).toBeNull()
    expect(r.table).toBe(254)
    expect(r.scope).toBe(253)
  })

  it("decodes RTA_MULTIPATH next hops", () => {
    const m = single(fromHex(
      "40000000 1800 0000 00000000 00000000" +
        "02 18 00 00 fe 04 00 01 00000000" +
        "0800 0100 c6336400" +
        "1c00 0900" + // RTA_MULTIPATH, 2 hops
        "1000 04 00 05000000 0800 0500 c0000209" + // len 16, ONLINK, ifindex 5, RTA_GATEWAY
        "0800 00 00 06000000" // len 8, no gateway, ifindex 6
    ))
    expect(right(Netlink.parseRoute(m)).nexthops).toEqual([
      { oif: 5, flags: 4, gateway: { family: 4, addr: new Uint8Array([192, 0, 2, 9]) } },
      { oif: 6, flags: 0, gateway: null }
    ])
  })

  it("reports bad destination lengths, short integers and broken next hops", () => {
    const route = (body: string) => withHeader(Netlink.RTM_NEWROUTE, body)
    expect(left(Netlink.parseRoute(route("02 18 00 00 fe 04 00 01 00000000 0500 0100 c6"))).reason).toBe("bad-address")
    expect(left(Netlink.parseRoute(route("02 21 00 00 fe 04 00 01 00000000"))).reason).toBe("bad-address")
    expect(left(Netlink.parseRoute(route("02 18 00 00 fe 04 00 01 00000000 0600 0f00 0100 0000"))).reason).toBe(
      "truncated"
    )
    const shortHop = route("02 18 00 00 fe 04 00 01 00000000 0c00 0900 0400 0000 00000000")
    expect(left(Netlink.parseRoute(shortHop)).reason).toBe("bad-length")
    expect(left(Netlink.parseRoute(route("02 18 00 00 fe 04 00 01 00000000 0800 1200 1100 0000"))).reason).toBe(
      "unsupported-family"
    )
    expect(left(Netlink.parseRoute(route("07 00 00 00 fe 04 00 01 00000000"))).reason).toBe("unsupported-family")
    expect(left(Netlink.parseRoute(route("02 18 00 00 fe 04 00"))).reason).toBe("truncated")
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Properties

const arbFamily = fc.constantFrom<4 | 6>(4, 6)
const arbAddr = (family: 4 | 6) => fc.uint8Array({ minLength: family === 4 ? 4 : 16, maxLength: family === 4 ? 4 : 16 })
const arbGateway = fc.option(
  arbFamily.chain((family) => fc.record({ family: fc.constant(family), addr: arbAddr(family) })),
  { nil: null }
)

const arbNewAddress = arbFamily.chain((family) =>
  fc.record({
    family: fc.constant(family),
    ifindex: fc.integer({ min: 0, max: 0x7fffffff }),
    addr: arbAddr(family),
    prefix: fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
    seq: fc.integer({ min: 0, max: 0xffffffff })
  })
)

const arbRoute: fc.Arbitrary<Netlink.RouteInfo> = arbFamily.chain((family) =>
  fc.record({
    family: fc.constant(family),
    table: fc.integer({ min: 0, max: 0xffffffff }),
    type: fc.integer({ min: 0, max: 255 }),
    protocol: fc.integer({ min: 0, max: 255 }),
    scope: fc.integer({ min: 0, max: 255 }),
    tos: fc.integer({ min: 0, max: 255 }),
    dstLen: fc.integer({ min: 0, max: family === 4 ? 32 : 128 }),
    dst: arbAddr(family),
    gateway: arbGateway,
    oif: fc.integer({ min: 0, max: 0xffffffff }),
    priority: fc.integer({ min: 0, max: 0xffffffff }),
    flags: fc.integer({ min: 0, max: 0xffffffff }),
    nexthops: fc.array(
      fc.record({
        oif: fc.integer({ min: 0, max: 0x7fffffff }),
        flags: fc.integer({ min: 0, max: 255 }),
        gateway: arbGateway
      }),
      { maxLength: 3 }
    )
  }).map((r) => ({
    ...r,
    // the kernel omits RTA_DST for a default route; what would be there reads back as zeros
    dst: r.dstLen === 0 ? new Uint8Array(r.dst.length) : r.dst,
    onlink: (r.flags & Netlink.RTNH_F_ONLINK) !== 0
  }))
)

const parseAll = (bytes: Uint8Array) => {
  const msgs = Netlink.splitMessages(bytes)
  if (Either.isRight(msgs)) {
    for (const m of msgs.right) {
      Netlink.parseAddress(m)
      Netlink.parseRoute(m)
      Netlink.parseError(m)
    }
  }
  // the payload decoders on their own, with every type that selects a decoder
  for (const type of [Netlink.NLMSG_ERROR, Netlink.RTM_NEWADDR, Netlink.RTM_DELROUTE]) {
    for (const flags of [0, Netlink.NLM_F_ACK_TLVS, Netlink.NLM_F_ACK_TLVS | Netlink.NLM_F_CAPPED]) {
      const m = { type, flags, seq: 0, pid: 0, payload: bytes }
      Netlink.parseAddress(m)
      Netlink.parseRoute(m)
      Netlink.parseError(m)
    }
  }
  Netlink.attributes(bytes)
}

const arbValidMessage = fc.oneof(
  arbNewAddress.map((a) => Netlink.buildNewAddr(a)!),
  arbRoute.map((route) => Netlink.buildRoute({ type: Netlink.RTM_NEWROUTE, seq: 1, route }))
)

describe("Netlink properties", () => {
  it("parseAddress(buildNewAddr(x)) gives x back", () => {
    fc.assert(
      fc.property(arbNewAddress, (a) => {
        const parsed = right(Netlink.parseAddress(single(Netlink.buildNewAddr(a)!)))
        const { family, ifindex, prefix, addr } = a
        expect(parsed).toEqual({ family, ifindex, prefix, addr, scope: 0, flags: 0 })
        expect(single(Netlink.buildNewAddr(a)!).seq).toBe(a.seq)
      }),
      { numRuns: 2000 }
    )
  })

  it("parseRoute(buildRoute(x)) gives x back", () => {
    fc.assert(
      fc.property(arbRoute, fc.boolean(), (route, del) => {
        const type = del ? Netlink.RTM_DELROUTE : Netlink.RTM_NEWROUTE
        expect(right(Netlink.parseRoute(single(Netlink.buildRoute({ type, seq: 3, route }))))).toEqual(route)
      }),
      { numRuns: 2000 }
    )
  })

  it("arbitrary bytes never throw", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => parseAll(bytes)), { numRuns: 10_000 })
  })

  it("arbitrary bytes behind a plausible header never throw", () => {
    // a valid nlmsghdr in front of random bytes reaches the payload decoders much more often than noise does
    const arb = fc.tuple(
      fc.constantFrom(Netlink.NLMSG_ERROR, Netlink.RTM_NEWADDR, Netlink.RTM_DELADDR, Netlink.RTM_NEWROUTE),
      fc.integer({ min: 0, max: 0xffff }),
      fc.uint8Array({ maxLength: 160 })
    )
    fc.assert(
      fc.property(arb, ([type, flags, body]) => {
        const out = new Uint8Array(16 + body.length)
        const dv = new DataView(out.buffer)
        dv.setUint32(0, out.length, true)
        dv.setUint16(4, type, true)
        dv.setUint16(6, flags, true)
        out.set(body, 16)
        parseAll(out)
      }),
      { numRuns: 10_000 }
    )
  })

  it("truncations and bit flips of valid messages never throw", () => {
    const arb = fc.tuple(arbValidMessage, fc.nat(), fc.array(fc.nat(), { minLength: 1, maxLength: 4 }))
    fc.assert(
      fc.property(arb, ([msg, cut, flips]) => {
        parseAll(msg.subarray(0, cut % (msg.length + 1)))
        const flipped = msg.slice()
        for (const f of flips) flipped[(f >>> 3) % flipped.length]! ^= 1 << (f & 7)
        parseAll(flipped)
      }),
      { numRuns: 10_000 }
    )
  })
})
