import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import * as MemoryLink from "../../bench/lib/MemoryLink.js"
import { innerPacket, LOCAL, REMOTE } from "../../bench/lib/PacketLoop.js"
import { decode } from "../../src/domain/Config.js"
import * as HostAddressesTest from "../../src/layers/HostAddressesTest.js"
import * as ResolverTest from "../../src/layers/ResolverTest.js"
import * as RouteTableTest from "../../src/layers/RouteTableTest.js"
import { RawSockets } from "../../src/services/RawSocket.js"
import { TunDevice } from "../../src/services/TunDevice.js"
import * as Tunnel from "../../src/Tunnel.js"

const start = (link: MemoryLink.Link, tun: TunDevice["Type"], addr: number, remote: string) =>
  Effect.gen(function*() {
    const cfg = decode({ v4: true, v6: true, remote })
    if (Either.isLeft(cfg)) return yield* Effect.die(cfg.left)
    return yield* Tunnel.make(cfg.right).pipe(Effect.provide(Layer.mergeAll(
      Layer.succeed(TunDevice, tun),
      Layer.succeed(RawSockets, link.host(addr)),
      HostAddressesTest.layer(HostAddressesTest.empty),
      RouteTableTest.empty,
      ResolverTest.none
    )))
  })

let names = 0

describe("the benchmark's lean in-memory devices", () => {
  for (const family of [4, 6] as const) {
    it.scoped(`two real tunnels carry ${family === 4 ? "4in4" : "6in4"} from the source TUN to the sink TUN`, () =>
      Effect.gen(function*() {
        const packet = innerPacket(family, 1400, 1)
        // depth 2: the sender outruns the receiver at once, so the arena reuse is exercised
        const link = yield* MemoryLink.link(2)
        const source = yield* MemoryLink.sourceTun(`lnk${++names}`, packet, 64)
        const sink = yield* MemoryLink.sinkTun(`lnk${++names}`)
        const a = yield* start(link, source.device, LOCAL, "192.0.2.2")
        const b = yield* start(link, sink.device, REMOTE, "192.0.2.1")
        const done = yield* sink.arm(1000, packet)
        yield* source.grant(1000)
        expect(yield* done).toBe(true)
        const ca = yield* a.counters
        const cb = yield* b.counters
        expect(ca.encapPackets).toBe(1000)
        expect(cb.decapPackets).toBe(1000)
        expect(cb.decapBytes).toBe(1000 * 1400)
        expect(cb.drops).toEqual({})

        // a second round counts from zero and notices a packet that is not the expected one
        const other = innerPacket(family, 1400, 2)
        const again = yield* sink.arm(64, other)
        yield* source.grant(64)
        expect(yield* again).toBe(false)
      }))
  }
})
