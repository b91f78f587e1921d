/**
 * The hostile-packet catalogues checked against the packet code itself, without root: every packet the daemon is
 * meant to see whole gets the verdict the catalogue promises from decapBatch / encapBatch; the builders' checksums
 * are right (or wrong on purpose); and the reports of the crafter and the kernel are read as intended.
 */
import { describe, expect, it } from "vitest"
import type { SendReport } from "../../../scripts/lib/craft.js"
import * as Hostile from "../../../scripts/lib/Hostile.js"
import * as Netns from "../../../scripts/lib/Netns.js"
import { decapBatch } from "../../../src/domain/Decap.js"
import { dropName, makeCounts } from "../../../src/domain/Drops.js"
import { encapBatch } from "../../../src/domain/Encap.js"
import { encapContext, encapOut, ip4, refChecksum, refSum } from "../../domain/helpers.js"

const decapTarget: Hostile.DecapTarget = {
  local: "192.0.2.1",
  remote: "192.0.2.2",
  spoof: "192.0.2.3",
  innerSrc4: "198.51.100.2",
  innerDst4: "198.51.100.1",
  innerSrc6: "2001:db8:1::2",
  innerDst6: "2001:db8:1::1",
  port: 9000
}
const encapTarget: Hostile.EncapTarget = {
  innerSrc4: "198.51.100.1",
  innerDst4: "198.51.100.2",
  innerSrc6: "2001:db8:1::1",
  innerDst6: "2001:db8:1::2",
  remote: "192.0.2.2"
}

const headerOk = (p: Uint8Array): boolean => refSum(p.subarray(0, (p[0]! & 0x0f) * 4)) === 0xffff

/** The reasons counted into `drops`, by name. */
const reasons = (drops: Uint32Array): Record<string, number> => {
  const out: Record<string, number> = {}
  drops.forEach((n, i) => {
    if (n !== 0) out[dropName[i]!] = n
  })
  return out
}

/** The tag of a delivered inner IPv4 UDP datagram (its first 8 payload bytes). */
const tagOf = (inner: Uint8Array): string => {
  const hl = (inner[0]! & 0x0f) * 4
  return Buffer.from(inner.subarray(hl + 8, hl + 16)).toString("latin1").trimEnd()
}

describe("hostile packet builders", () => {
  it("writes a correct IPv4 header checksum, with options, and a wrong one on request", () => {
    const good = Hostile.ipv4({ src: "192.0.2.2", dst: "192.0.2.1", proto: 4, payload: new Uint8Array(8), ihl: 7 })
    expect(good.length).toBe(28 + 8)
    expect(headerOk(good)).toBe(true)
    expect([...good.subarray(20, 28)]).toEqual([1, 1, 1, 1, 1, 1, 1, 1])
    const bad = Hostile.ipv4({ src: "192.0.2.2", dst: "192.0.2.1", proto: 4, payload: good, badChecksum: true })
    expect(headerOk(bad)).toBe(false)
  })

  it("writes a UDP checksum over the IPv6 pseudo-header (RFC 8200 8.1)", () => {
    const d = Hostile.udp6("2001:db8:1::2", "2001:db8:1::1", 9000, "v6")
    const pseudo = new Uint8Array(40)
    pseudo.set(Hostile.ipv6({ src: "2001:db8:1::2", dst: "2001:db8:1::1", next: 17, payload: d }).subarray(8, 40))
    new DataView(pseudo.buffer).setUint32(32, d.length)
    pseudo[39] = 17
    expect(refChecksum(d, refSum(pseudo))).toBe(0)
  })
})

describe("hostile catalogues against the packet code", () => {
  const items = Hostile.decapCatalogue(decapTarget)

  it("has a verdict for every packet the daemon sees whole", () => {
    const ctx = { v4: true, v6: true, remote: ip4(decapTarget.remote), local: 0 }
    const seen = items.filter((item) => item.outcome._tag !== "Unseen" && item.freshId === undefined)
    expect(seen.length).toBeGreaterThan(25)
    for (const item of seen) {
      const frame = item.frames[0]!
      const out = { packets: [] as Array<Uint8Array>, drops: makeCounts() }
      decapBatch([frame], frame[9] === 41 ? 41 : 4, ctx, out)
      if (item.outcome._tag === "Drop") {
        expect(reasons(out.drops), item.name).toEqual({ [item.outcome.reason]: 1 })
      } else if (item.outcome._tag === "Delivered") {
        expect(out.packets.map(tagOf), item.name).toEqual([item.outcome.tag])
      }
    }
  })

  it("splits the fragmented packet into two fragments that reassemble to a deliverable one", () => {
    const item = items.find((i) => i.name === "fragments-complete")!
    const [first, second] = item.frames
    expect(first![6]! & 0x20, "MF on the first").toBe(0x20)
    expect(((second![6]! & 0x1f) << 8) | second![7]!, "offset of the second, in 8-byte units").toBe(3)
    const payload = new Uint8Array([...first!.subarray(20), ...second!.subarray(20)])
    const whole = Hostile.ipv4({ src: decapTarget.remote, dst: decapTarget.local, proto: 4, payload })
    const out = { packets: [] as Array<Uint8Array>, drops: makeCounts() }
    decapBatch([whole], 4, { v4: true, v6: true, remote: ip4(decapTarget.remote), local: 0 }, out)
    expect(out.packets.map(tagOf)).toEqual(["frag"])
  })

  it("gives every TUN packet the drop reason the catalogue names", () => {
    for (const item of Hostile.tunCatalogue(encapTarget)) {
      const out = encapOut()
      encapBatch(item.frames, encapContext({ remoteOf: () => ip4(encapTarget.remote) }), out)
      expect(out.frames, item.name).toEqual([])
      if (item.outcome._tag === "Drop") expect(reasons(out.drops), item.name).toEqual({ [item.outcome.reason]: 1 })
    }
  })

  it("builds stack packets of the sizes it promises", () => {
    const stack = Hostile.stackCatalogue(encapTarget, 1500)
    const size = (name: string) => stack.find((i) => i.name === name)!.frames[0]!.length
    expect(size("too-big-df")).toBe(1500)
    expect(size("over-device-mtu")).toBe(1520)
    const out = encapOut()
    const tooBig = stack.find((i) => i.name === "too-big-df")!.frames
    // the daemon's tunnel MTU is 1480: its path takes 1500-byte outer packets
    encapBatch(tooBig, encapContext({ remoteOf: () => ip4(encapTarget.remote), tunAddr4: ip4("198.51.100.1") }), out)
    expect(reasons(out.drops)).toEqual({ encap_too_big: 1 })
    expect(out.replies).toHaveLength(1)
  })
})

describe("reading the reports", () => {
  it("turns a crafter report into expected counters", () => {
    const items: ReadonlyArray<Hostile.HostileItem> = [
      { name: "a", frames: [new Uint8Array(20)], outcome: { _tag: "Drop", reason: "decap_ttl_zero" } },
      {
        name: "b",
        frames: [new Uint8Array(20), new Uint8Array(20)],
        outcome: { _tag: "Delivered", tag: "frag" },
        kernel: { "Ip.ReasmReqds": 2, "Ip.ReasmOKs": 1 }
      },
      { name: "c", frames: [new Uint8Array(20)], outcome: { _tag: "Unseen" }, refused: Hostile.EINVAL },
      { name: "d", frames: [new Uint8Array(20)], outcome: { _tag: "Drop", reason: "decap_ttl_zero" } }
    ]
    const report: SendReport = {
      durationMs: 5,
      items: [
        { name: "a", sent: 10, errors: {} },
        { name: "b", sent: 8, errors: {} },
        { name: "c", sent: 0, errors: { "22": 10 } },
        { name: "d", sent: 3, errors: {} }
      ]
    }
    expect(Hostile.expectationOf(items, report)).toEqual({
      drops: { decap_ttl_zero: 13 },
      delivered: { frag: 4 },
      kernel: { "Ip.ReasmReqds": 8, "Ip.ReasmOKs": 4 },
      refused: { c: { "22": 10 } },
      frames: 31
    })
  })

  it("reads /proc/net/snmp and /proc/net/netstat", () => {
    const text = [
      "Ip: Forwarding DefaultTTL InReceives InHdrErrors",
      "Ip: 2 64 129146 9300",
      "Icmp: InMsgs InErrors",
      "Icmp: 400 400",
      "IpExt: InNoRoutes InTruncatedPkts InCsumErrors",
      "IpExt: 0 3100 6200",
      ""
    ].join("\n")
    expect(Netns.parseKernelCounters(text)).toEqual({
      "Ip.Forwarding": 2,
      "Ip.DefaultTTL": 64,
      "Ip.InReceives": 129146,
      "Ip.InHdrErrors": 9300,
      "Icmp.InMsgs": 400,
      "Icmp.InErrors": 400,
      "IpExt.InNoRoutes": 0,
      "IpExt.InTruncatedPkts": 3100,
      "IpExt.InCsumErrors": 6200
    })
  })

  it("reads the protocol and drops of each raw socket from /proc/net/raw", () => {
    const text = [
      "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
      "   4: 00000000:0004 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 81234 2 " +
      "ffff8880049c2d00 0",
      "  41: 00000000:0029 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 81235 2 " +
      "ffff8880049c3200 17",
      ""
    ].join("\n")
    expect(Netns.parseRawSockets(text)).toEqual([{ protocol: 4, drops: 0 }, { protocol: 41, drops: 17 }])
  })
})
