import { describe, expect, it } from "vitest"
import { HEADROOM } from "../../src/domain/Encap.js"
import * as Ipv4 from "../../src/domain/Ipv4.js"
import * as Ipv6 from "../../src/domain/Ipv6.js"
import { innerPacket, makeLoop } from "../../bench/lib/PacketLoop.js"

describe("the benchmark's packet loop", () => {
  it("builds inner packets of exactly the asked size, valid for encapsulation", () => {
    const p4 = innerPacket(4, 64, 3)
    expect(p4.length).toBe(64)
    expect(Ipv4.totalLength(p4)).toBe(64)
    expect(Ipv4.verifyChecksum(p4)).toBe(true)
    const p6 = innerPacket(6, 1400, 3)
    expect(p6.length).toBe(1400)
    expect(Ipv6.HEADER + Ipv6.payloadLength(p6)).toBe(1400)
    expect(innerPacket(4, 64, 1)).not.toEqual(innerPacket(4, 64, 2))
  })

  for (const family of [4, 6] as const) {
    for (const size of [64, 1400]) {
      it(`${family === 4 ? "4in4" : "6in4"} ${size} B: every packet of the batch comes back unchanged`, () => {
        const loop = makeLoop(family, size, 8)
        expect(loop.packets.every((p) => p.byteOffset >= HEADROOM)).toBe(true)
        expect(loop.roundTrip(3)).toBe(24)
        expect(loop.encapOnly(2)).toBe(16)
        expect(loop.decapOnly(2)).toBe(16)
        expect(loop.drops()).toBe(0)
        const delivered = loop.lastDelivered()
        expect(delivered.map((p) => Buffer.from(p).toString("hex")))
          .toEqual(Array.from({ length: 8 }, (_, i) => Buffer.from(innerPacket(family, size, i)).toString("hex")))
      })
    }
  }
})
