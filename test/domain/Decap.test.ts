import { describe, expect, it } from "@effect/vitest"
import type { DecapContext } from "../../src/domain/Decap.js"
import { decapBatch, decapEcn } from "../../src/domain/Decap.js"
import { Drop, makeCounts } from "../../src/domain/Drops.js"
import { dropsOf, fixV4Checksum, fromHex, ip4, LOCAL, refSum, REMOTE, v4Packet, v6Packet } from "./helpers.js"

const CTX: DecapContext = { v4: true, v6: true, remote: ip4(REMOTE), local: ip4(LOCAL) }

/** An outer IPIP / 6in4 packet from REMOTE to LOCAL around `inner`, built with the test's own builder. */
const wrap = (inner: Uint8Array, o: { proto?: number; tos?: number; src?: string; dst?: string } = {}) =>
  v4Packet({
    src: o.src ?? REMOTE,
    dst: o.dst ?? LOCAL,
    proto: o.proto ?? ((inner[0]! >>> 4) === 6 ? 41 : 4),
    tos: o.tos ?? 0,
    id: 0x7777,
    payload: inner
  })

const run = (frames: ReadonlyArray<Uint8Array>, proto: 4 | 41, over: Partial<DecapContext> = {}) => {
  const out = { packets: [] as Array<Uint8Array>, drops: makeCounts() }
  decapBatch(frames, proto, { ...CTX, ...over }, out)
  return { packets: out.packets, drops: dropsOf(out.drops) }
}

const only = (frame: Uint8Array, proto: 4 | 41, reason: number, over: Partial<DecapContext> = {}) => {
  const { drops, packets } = run([frame], proto, over)
  expect(drops).toEqual({ [reason]: 1 })
  expect(packets).toEqual([])
}

const edit = (frame: Uint8Array, at: number, value: number, fix = true) => {
  const f = frame.slice()
  f[at] = value
  return fix ? fixV4Checksum(f) : f
}

describe("decapBatch: golden packets", () => {
  // The golden frames of Encap.test.ts go from LOCAL to REMOTE: decapsulate them as the peer would.
  const PEER = { remote: ip4(LOCAL), local: ip4(REMOTE) }

  it("4in4: hands out the hand-built inner packet of the golden frame unchanged", () => {
    const inner = fromHex("458b00241c4640003f01a703cb007101cb00710208003294000100016b69776974756e21")
    const frame = fromHex("458a00380000400040044e01c0000201c6336402" + Buffer.from(inner).toString("hex"))
    const { drops, packets } = run([frame], 4, PEER)
    expect(drops).toEqual({})
    expect(packets).toEqual([inner])
  })

  it("6in4: hands out the hand-built inner packet of the golden frame unchanged", () => {
    const inner = fromHex(
      "6b912345000c3a4020010db800010000000000000000000120010db80002000000000000000000028000" + "7f5a0042000736696e34"
    )
    const frame = fromHex("45b900480000000040298d9dc0000201c6336402" + Buffer.from(inner).toString("hex"))
    const { drops, packets } = run([frame], 41, PEER)
    expect(drops).toEqual({})
    expect(packets).toEqual([inner])
  })
})

describe("decapBatch: outer header", () => {
  it("hands out a view of the frame (no copy) and ignores bytes after the total length", () => {
    const inner = v4Packet()
    const frame = Uint8Array.from([...wrap(inner), 0xde, 0xad])
    const { packets } = run([frame], 4)
    expect(packets.length).toBe(1)
    expect(packets[0]!.buffer).toBe(frame.buffer)
    expect(packets[0]!.byteOffset).toBe(frame.byteOffset + 20)
    expect(packets[0]).toEqual(inner)
  })

  it("drops a non-IPv4 outer, IHL < 5, or a header longer than the bytes", () => {
    const frame = wrap(v4Packet())
    only(edit(frame, 0, 0x65), 4, Drop.DecapOuterBadHeader)
    only(edit(frame, 0, 0x44), 4, Drop.DecapOuterBadHeader)
    only(frame.subarray(0, 19), 4, Drop.DecapOuterBadHeader)
    only(edit(wrap(new Uint8Array(0)), 0, 0x46), 4, Drop.DecapOuterBadHeader)
  })

  it("drops a wrong outer checksum", () => {
    only(edit(wrap(v4Packet()), 8, 3, false), 4, Drop.DecapOuterBadChecksum)
  })

  it("drops an outer total length beyond the bytes, and one shorter than the header", () => {
    const frame = wrap(v4Packet())
    only(frame.subarray(0, frame.length - 1), 4, Drop.DecapOuterTruncated)
    only(edit(frame, 3, 19), 4, Drop.DecapOuterBadHeader)
  })

  it("drops outer fragments, first (MF) or later (offset)", () => {
    const frame = wrap(v4Packet())
    only(edit(frame, 6, 0x20), 4, Drop.DecapFragment)
    only(edit(frame, 7, 0x01), 4, Drop.DecapFragment)
    only(edit(frame, 6, 0x60), 4, Drop.DecapFragment)
    expect(run([edit(frame, 6, 0x40)], 4).packets.length).toBe(1) // DF alone is fine
  })

  it("drops an outer protocol other than the socket's", () => {
    only(wrap(v4Packet(), { proto: 41 }), 4, Drop.DecapOuterBadHeader)
    only(wrap(v6Packet(), { proto: 4 }), 41, Drop.DecapOuterBadHeader)
  })

  it("drops a protocol whose mode is off", () => {
    only(wrap(v4Packet()), 4, Drop.DecapModeDisabled, { v4: false })
    only(wrap(v6Packet()), 41, Drop.DecapModeDisabled, { v6: false })
  })

  it("checks the outer source against a fixed remote, and accepts any in dynamic mode (remote 0)", () => {
    const stranger = wrap(v4Packet(), { src: "198.51.100.99" })
    only(stranger, 4, Drop.DecapRemoteMismatch)
    expect(run([stranger], 4, { remote: 0 }).packets.length).toBe(1)
  })

  it("checks the outer destination against -l, and accepts any without it", () => {
    const other = wrap(v4Packet(), { dst: "192.0.2.99" })
    only(other, 4, Drop.DecapLocalMismatch)
    expect(run([other], 4, { local: 0 }).packets.length).toBe(1)
  })
})

describe("decapBatch: inner packet", () => {
  it("drops an inner version that does not match the protocol", () => {
    only(wrap(v6Packet(), { proto: 4 }), 4, Drop.DecapInnerBadVersion)
    only(edit(wrap(v4Packet()), 9, 41), 41, Drop.DecapInnerBadVersion)
  })

  it("drops an empty, short or length-inconsistent inner packet", () => {
    only(wrap(new Uint8Array(0), { proto: 4 }), 4, Drop.DecapInnerTruncated)
    only(wrap(v4Packet().subarray(0, 19), { proto: 4 }), 4, Drop.DecapInnerTruncated)
    const p = v4Packet()
    only(wrap(p.subarray(0, p.length - 1), { proto: 4 }), 4, Drop.DecapInnerTruncated)
    only(wrap(Uint8Array.from([...p, 0]), { proto: 4 }), 4, Drop.DecapInnerTruncated)
    only(wrap(v6Packet().subarray(0, 39), { proto: 41 }), 41, Drop.DecapInnerTruncated)
    const q = v6Packet()
    only(wrap(q.subarray(0, q.length - 1), { proto: 41 }), 41, Drop.DecapInnerTruncated)
    only(wrap(Uint8Array.from([...q, 0]), { proto: 41 }), 41, Drop.DecapInnerTruncated)
  })

  it("drops an inner IPv4 header with IHL < 5 or beyond the packet, or a wrong checksum", () => {
    only(wrap(edit(v4Packet(), 0, 0x44)), 4, Drop.DecapInnerBadHeader)
    only(wrap(edit(v4Packet({ payload: new Uint8Array(4) }), 0, 0x47)), 4, Drop.DecapInnerBadHeader)
    only(wrap(edit(v4Packet(), 8, 9, false)), 4, Drop.DecapInnerBadChecksum)
  })

  it("drops inner TTL / hop limit 0 and delivers 1 unchanged", () => {
    only(wrap(v4Packet({ ttl: 0 })), 4, Drop.DecapTtlZero)
    only(wrap(v6Packet({ hop: 0 })), 41, Drop.DecapTtlZero)
    const p = v4Packet({ ttl: 1 })
    expect(run([wrap(p)], 4).packets).toEqual([p])
    const q = v6Packet({ hop: 1 })
    expect(run([wrap(q)], 41).packets).toEqual([q])
  })

  it("drops 6in4 inner sources that cannot be real (RFC 4213 3.6), keeps link-local and multicast destinations", () => {
    for (const src of ["::ffff:192.0.2.7", "::192.0.2.7", "::", "::1", "ff02::1", "ff0e::5"]) {
      only(wrap(v6Packet({ src })), 41, Drop.DecapBadSource)
    }
    for (const [src, dst] of [["fe80::1", "fe80::2"], ["2001:db8::1", "ff02::9"], ["::1:0:0:1", "2001:db8::2"]]) {
      const p = v6Packet({ src, dst })
      expect(run([wrap(p)], 41).packets).toEqual([p])
    }
  })

  it("delivers IPv4 multicast (e.g. RIP to 224.0.0.9)", () => {
    const p = v4Packet({ dst: "224.0.0.9" })
    expect(run([wrap(p)], 4).packets).toEqual([p])
  })
})

describe("decapBatch: ECN (RFC 6040 4.2)", () => {
  // Rows: inner Not-ECT, ECT(1), ECT(0), CE (codepoints 0..3); columns: outer Not-ECT, ECT(1), ECT(0), CE.
  // The table from the RFC, with -1 for drop.
  const TABLE: ReadonlyArray<ReadonlyArray<number>> = [
    [0, 0, 0, -1],
    [1, 1, 1, 3],
    [2, 1, 2, 3],
    [3, 3, 3, 3]
  ]

  it("decapEcn follows the table", () => {
    for (let inner = 0; inner < 4; inner++) {
      for (let outer = 0; outer < 4; outer++) expect(decapEcn(outer, inner)).toBe(TABLE[inner]![outer])
    }
  })

  it("applies the table to inner IPv4 with the header checksum still right, and to inner IPv6", () => {
    for (let inner = 0; inner < 4; inner++) {
      for (let outer = 0; outer < 4; outer++) {
        const want = TABLE[inner]![outer]!
        const p4 = v4Packet({ tos: 0xb8 | inner })
        const r4 = run([wrap(p4, { tos: 0x20 | outer })], 4)
        const p6 = v6Packet({ tc: 0xb8 | inner, flow: 0xabcde })
        const r6 = run([wrap(p6, { tos: 0x20 | outer })], 41)
        if (want < 0) {
          expect(r4.drops).toEqual({ [Drop.DecapEcnCe]: 1 })
          expect(r6.drops).toEqual({ [Drop.DecapEcnCe]: 1 })
          continue
        }
        const got4 = r4.packets[0]!
        expect(got4[1]).toBe(0xb8 | want)
        expect(refSum(got4.subarray(0, 20))).toBe(0xffff)
        expect(got4.subarray(2)).toEqual(p4.subarray(2).map((b, i) => (i === 8 || i === 9 ? got4[i + 2]! : b)))
        const got6 = r6.packets[0]!
        expect(((got6[0]! & 0x0f) << 4) | (got6[1]! >>> 4)).toBe(0xb8 | want)
        expect(((got6[1]! & 0x0f) << 16) | (got6[2]! << 8) | got6[3]!).toBe(0xabcde)
        expect(got6.subarray(4)).toEqual(p6.subarray(4))
      }
    }
  })
})

describe("decapBatch: batches", () => {
  it("counts each drop and delivers the rest in order", () => {
    const a = v4Packet({ id: 1 })
    const b = v4Packet({ id: 2 })
    const { drops, packets } = run(
      [wrap(a), wrap(v4Packet({ ttl: 0 })), Uint8Array.of(1, 2, 3), wrap(b), edit(wrap(a), 6, 0x20)],
      4
    )
    expect(packets).toEqual([a, b])
    expect(drops).toEqual({ [Drop.DecapTtlZero]: 1, [Drop.DecapOuterBadHeader]: 1, [Drop.DecapFragment]: 1 })
  })
})
