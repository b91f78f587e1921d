import { beforeEach, describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Either, Layer } from "effect"
import type { RawConfig } from "../src/domain/Config.js"
import { decode } from "../src/domain/Config.js"
import * as HostAddressesTest from "../src/layers/HostAddressesTest.js"
import * as ResolverTest from "../src/layers/ResolverTest.js"
import * as RouteTableTest from "../src/layers/RouteTableTest.js"
import * as TunDeviceTest from "../src/layers/TunDeviceTest.js"
import type { Underlay } from "../src/layers/UnderlayTest.js"
import * as UnderlayTest from "../src/layers/UnderlayTest.js"
import type { AddressSnapshot } from "../src/services/HostAddresses.js"
import { RawSockets } from "../src/services/RawSocket.js"
import { RouteTable } from "../src/services/RouteTable.js"
import { TunDevice, TunError } from "../src/services/TunDevice.js"
import * as Tunnel from "../src/Tunnel.js"
import * as Ref from "./domain/offloadRef.js"
import { steppingClock } from "./support/clock.js"
import { hex, icmp6Echo, icmpEcho, icmpv6ChecksumOk, ipv4HeaderOk, ipv4Packet, ipv6Packet, v4, v6 } from "./support/packets.js"

const config = (raw: RawConfig) => {
  const c = decode(raw)
  if (Either.isLeft(c)) throw new Error(c.left.message)
  return c.right
}

// Effect metrics are process-wide, keyed by the interface name: give every tunnel of this file its own name.
let tunnels = 0

const host = (
  underlay: Underlay,
  addr: string,
  raw: RawConfig,
  opts: {
    routes?: ReadonlyArray<RouteTableTest.TestRoute>
    addresses?: AddressSnapshot
    offload?: boolean
    offloadUdp?: boolean
  } = {}
) =>
  Effect.gen(function*() {
    const tun = yield* TunDeviceTest.make({
      name: `ktun${++tunnels}`,
      offload: opts.offload ?? offloadMode,
      offloadUdp: opts.offloadUdp ?? false
    })
    const net = yield* underlay.host(v4(addr))
    const routes = yield* RouteTableTest.make(opts.routes ?? [])
    const tunnel = yield* Tunnel.make(config(raw)).pipe(
      Effect.provide(Layer.mergeAll(
        TunDeviceTest.layer(tun),
        Layer.succeed(RawSockets, net.rawSockets),
        HostAddressesTest.layer(opts.addresses ?? HostAddressesTest.empty),
        RouteTableTest.layer(routes),
        ResolverTest.none
      ))
    )
    return { tun, net, routes, tunnel }
  })

const A = "192.0.2.1"
const B = "192.0.2.2"

// Every test runs with plain TUN packets and with TUN offloads (virtio headers, GSO/GRO in the data path).
let offloadMode = false

for (const offload of [false, true]) describe(`Tunnel over the in-memory underlay (offload ${offload ? "on" : "off"})`, () => {
  beforeEach(() => {
    offloadMode = offload
  })

  it.scoped("carries IPv4 and IPv6 from A's TUN to B's TUN and back, unchanged", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, v6: true, remote: B })
      const b = yield* host(underlay, B, { v4: true, v6: true, remote: A })

      const p4 = ipv4Packet({ src: "198.51.100.1", dst: "198.51.100.2", payload: icmpEcho(56), tos: 0xb8 })
      const p6 = ipv6Packet({ src: "2001:db8:1::1", dst: "2001:db8:1::2", payload: icmp6Echo(56) })
      yield* a.tun.inject(p4)
      yield* a.tun.inject(p6)
      const atB = yield* b.tun.awaitWritten(2)
      expect(atB.map(hex).sort()).toEqual([hex(p4), hex(p6)].sort())

      // on the wire: outer IPv4 A -> B, protocol 4 and 41, DSCP copied
      const wire = yield* underlay.wire
      expect(wire.map((f) => f[9])).toEqual([4, 41])
      expect(wire.every((f) => ipv4HeaderOk(f) && f[1] === 0xb8 || f[9] === 41)).toBe(true)

      const back = ipv4Packet({ src: "198.51.100.2", dst: "198.51.100.1", payload: icmpEcho(100) })
      yield* b.tun.inject(back)
      expect((yield* a.tun.awaitWritten(1)).map(hex)).toEqual([hex(back)])

      const ca = yield* a.tunnel.counters
      const cb = yield* b.tunnel.counters
      expect(ca.encapPackets).toBe(2)
      expect(ca.decapPackets).toBe(1)
      expect(cb.decapPackets).toBe(2)
      expect(cb.decapBytes).toBe(p4.length + p6.length)
      expect(cb.netRxPackets).toBe(2)
    }))

  it.scoped("drops packets from a source that is not the fixed remote, counted by reason", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const b = yield* host(underlay, B, { v4: true, remote: A })
      const intruder = yield* host(underlay, "192.0.2.3", { v4: true, remote: B })
      yield* intruder.tun.inject(ipv4Packet({ src: "198.51.100.9", dst: "198.51.100.2" }))
      // the intruder's frame reaches B's socket but never B's TUN
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect(yield* b.tun.takeWritten).toEqual([])
      expect((yield* b.tunnel.counters).drops).toEqual({ decap_remote_mismatch: 1 })
    }))

  it.scoped("a 4in4-only tunnel drops IPv6 from its TUN and 6in4 from the network", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, v6: true, remote: B })
      const b = yield* host(underlay, B, { v4: true, remote: A })
      yield* b.tun.inject(ipv6Packet({ src: "2001:db8:1::2", dst: "2001:db8:1::1" }))
      yield* a.tun.inject(ipv6Packet({ src: "2001:db8:1::1", dst: "2001:db8:1::2" }))
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect(yield* b.tun.takeWritten).toEqual([])
      // B has no protocol-41 socket: the underlay has nowhere to deliver A's 6in4 frame
      expect((yield* b.tunnel.counters).drops).toEqual({ encap_mode_disabled: 1 })
    }))

  it.scoped("dynamic mode: the route's gateway is the remote; no route -> ICMP unreachable into the TUN", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, v6: true }, {
        routes: [
          { prefix: "203.0.113.0/24", gateway: v4(B) },
          { prefix: "2001:db8:2::/48", gateway: v4(B) }
        ],
        addresses: { tun4: v4("198.51.100.1"), tun6: v6("2001:db8:1::1"), local4: new Set([v4(A)]) }
      })
      const b = yield* host(underlay, B, { v4: true, v6: true })
      const routed = ipv4Packet({ src: "198.51.100.1", dst: "203.0.113.7", payload: icmpEcho(8) })
      const routed6 = ipv6Packet({ src: "2001:db8:1::1", dst: "2001:db8:2::7", payload: icmp6Echo(8) })
      yield* a.tun.inject(routed)
      yield* a.tun.inject(routed6)
      expect((yield* b.tun.awaitWritten(2)).map(hex).sort()).toEqual([hex(routed), hex(routed6)].sort())

      const lost = ipv4Packet({ src: "198.51.100.5", dst: "198.18.0.1", payload: icmpEcho(8) })
      yield* a.tun.inject(lost)
      const [reply] = yield* a.tun.awaitWritten(1)
      expect(reply).toBeDefined()
      expect(ipv4HeaderOk(reply!)).toBe(true)
      expect([reply![20], reply![21]]).toEqual([3, 1]) // host unreachable
      expect(hex(reply!.subarray(16, 20))).toBe(hex(lost.subarray(12, 16))) // back to the sender

      const lost6 = ipv6Packet({ src: "2001:db8:1::5", dst: "2001:db8:99::1", payload: icmp6Echo(8) })
      yield* a.tun.inject(lost6)
      const [reply6] = yield* a.tun.awaitWritten(1)
      expect([reply6![40], reply6![41]]).toEqual([1, 0]) // no route
      expect(icmpv6ChecksumOk(reply6!)).toBe(true)
      expect(hex(reply6!.subarray(8, 24))).toBe(hex(v6("2001:db8:1::1"))) // the tunnel's own address, never ::
      expect((yield* a.tunnel.counters).drops).toEqual({ encap_no_route: 2 })
    }))

  it.scoped("times the ICMP rate limit on the monotonic clock: a wall clock stepping back does not silence it", () =>
    Effect.gen(function*() {
      const { clock, pass, stepWall } = steppingClock(10_000_000)
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, icmpRate: 2, icmpBurst: 2 }, {
        addresses: { tun4: v4("198.51.100.1"), tun6: null, local4: new Set([v4(A)]) }
      }).pipe(Effect.withClock(clock))
      // no route to 198.18.0.0/15: each packet is answered with an ICMP unreachable while tokens last
      const lost = ipv4Packet({ src: "198.51.100.5", dst: "198.18.0.1", payload: icmpEcho(8) })
      const burst = (n: number) =>
        Effect.gen(function*() {
          for (let i = 0; i < n; i++) yield* a.tun.inject(lost)
          for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
          return (yield* a.tun.takeWritten).length
        })
      expect(yield* burst(4)).toBe(2)
      // an hour back on the wall clock while one second passes: the bucket has refilled
      stepWall(-3_600_000)
      pass(1000)
      expect(yield* burst(4)).toBe(2)
      const counters = yield* a.tunnel.counters
      expect(counters.drops).toEqual({ encap_no_route: 8, icmp_rate_limited: 4 })
    }))

  it.scoped("learns the path MTU from EMSGSIZE and answers DF packets with Fragmentation Needed", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, v6: true, remote: B }, {
        addresses: { tun4: v4("198.51.100.1"), tun6: v6("2001:db8:1::1"), local4: new Set([v4(A)]) }
      })
      const b = yield* host(underlay, B, { v4: true, v6: true, remote: A })
      yield* a.net.setMtu(1400)
      const big = ipv4Packet({ src: "198.51.100.1", dst: "198.51.100.2", df: true, payload: icmpEcho(1424) })
      expect(big.length).toBe(1452)
      yield* a.tun.inject(big)
      const [reply] = yield* a.tun.awaitWritten(1)
      expect([reply![20], reply![21]]).toEqual([3, 4])
      expect((reply![26]! << 8) | reply![27]!).toBe(1380)
      // the source is one of this host's addresses: the reply comes from the destination (martian rule)
      expect(hex(reply!.subarray(12, 16))).toBe(hex(big.subarray(16, 20)))

      const big6 = ipv6Packet({ src: "2001:db8:1::1", dst: "2001:db8:1::2", payload: icmp6Echo(1400) })
      yield* a.tun.inject(big6)
      const [ptb] = yield* a.tun.awaitWritten(1)
      expect([ptb![40], ptb![41]]).toEqual([2, 0])
      expect(new DataView(ptb!.buffer, ptb!.byteOffset).getUint32(44)).toBe(1380)
      expect(icmpv6ChecksumOk(ptb!)).toBe(true)

      // without DF the outer packet is fragmented and B reassembles nothing itself: the underlay carries fragments
      const loose = ipv4Packet({ src: "198.51.100.1", dst: "198.51.100.2", payload: icmpEcho(1424) })
      yield* a.tun.inject(loose)
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      const frags = (yield* underlay.wire).filter((f) => ((f[6]! & 0x3f) | f[7]!) !== 0 || (f[6]! & 0x20) !== 0)
      expect(frags.length).toBe(2)
      expect(frags.every((f) => f.length <= 1400)).toBe(true)
      expect((yield* b.tun.takeWritten).length).toBe(0) // B's decap drops fragments the kernel would reassemble
      expect((yield* a.tunnel.counters).drops).toEqual({ encap_too_big: 2 })
    }))
})

describe("Tunnel with TUN offloads", () => {
  for (const v6 of [false, true]) {
    it.scoped(`segments a ${v6 ? "6in4" : "4in4"} TCP super-packet and coalesces the segments again on the far side`, () =>
      Effect.gen(function*() {
        const underlay = yield* UnderlayTest.make
        const a = yield* host(underlay, A, { v4: true, v6: true, remote: B }, { offload: true })
        const b = yield* host(underlay, B, { v4: true, v6: true, remote: A }, { offload: true })
        const spec: Ref.TcpSpec = {
          v6,
          src: v6 ? "2001:db8:1::1" : "198.51.100.1",
          dst: v6 ? "2001:db8:1::2" : "198.51.100.2",
          flags: Ref.ACK | Ref.PSH,
          payload: Ref.patternedFrom(20_000, 1000)
        }
        // the MSS the kernel uses on a 1480-byte MTU: 1440 over IPv4, 1420 over IPv6
        const mss = v6 ? 1420 : 1440
        yield* a.tun.injectFrame(Ref.superFrame(spec, mss))
        const expected = Ref.expectedSegments(spec, mss)
        const n = Math.ceil(20_000 / mss)
        expect(expected.length).toBe(n)
        const got = yield* b.tun.awaitWritten(expected.length)
        expect(got.map(hex)).toEqual(expected.map(hex))
        // one outer packet per segment on the wire, each within the 1500-byte underlay
        const wire = yield* underlay.wire
        expect(wire.length).toBe(n)
        expect(wire.every((f) => f.length <= 1500)).toBe(true)
        // B wrote fewer frames than segments: they were coalesced into super-packets
        const frames = yield* b.tun.takeFrames
        expect(frames.length).toBeLessThan(expected.length)
        expect(frames[0]![1]).toBe(v6 ? 4 : 1) // gso_type TCPV6 / TCPV4
        expect((yield* a.tunnel.counters).encapPackets).toBe(n)
        expect((yield* b.tunnel.counters).decapPackets).toBe(n)
      }))
  }

  for (const v6 of [false, true]) {
    it.scoped(`cuts a ${v6 ? "6in4" : "4in4"} UDP super-packet into datagrams and merges them again on the far side`, () =>
      Effect.gen(function*() {
        const underlay = yield* UnderlayTest.make
        const a = yield* host(underlay, A, { v4: true, v6: true, remote: B }, { offload: true, offloadUdp: true })
        const b = yield* host(underlay, B, { v4: true, v6: true, remote: A }, { offload: true, offloadUdp: true })
        const spec: Ref.UdpSpec = {
          v6,
          src: v6 ? "2001:db8:1::1" : "198.51.100.1",
          dst: v6 ? "2001:db8:1::2" : "198.51.100.2",
          payload: Ref.patternedFrom(40 * 64 + 20, 7)
        }
        // 41 datagrams of 64 bytes (the last 20), as a sender using UDP_SEGMENT hands them to the TUN device
        yield* a.tun.injectFrame(Ref.udpSuperFrame(spec, 64))
        const expected = Ref.expectedUdpSegments(spec, 64)
        expect(expected.length).toBe(41)
        const got = yield* b.tun.awaitWritten(expected.length)
        expect(got.map(hex)).toEqual(expected.map(hex))
        expect((yield* underlay.wire).length).toBe(41)
        // B wrote them as one UDP_L4 super-packet
        const frames = yield* b.tun.takeFrames
        expect(frames.length).toBe(1)
        expect(frames[0]![1]).toBe(5) // gso_type UDP_L4
        expect((yield* b.tunnel.counters).decapPackets).toBe(41)
      }))
  }

  it.scoped("without UDP offload on the device, datagrams are written one by one", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, remote: B }, { offload: true })
      const b = yield* host(underlay, B, { v4: true, remote: A }, { offload: true })
      const spec: Ref.UdpSpec = { src: "198.51.100.1", dst: "198.51.100.2", payload: Ref.patternedFrom(64, 3) }
      const datagrams = Ref.udpBurst(spec, 64, 640)
      expect(datagrams.length).toBe(10)
      for (const d of datagrams) yield* a.tun.injectFrame(Ref.plainFrame(d))
      yield* b.tun.awaitWritten(10)
      const frames = yield* b.tun.takeFrames
      expect(frames.length).toBe(10)
      expect(frames.every((f) => f[1] === 0)).toBe(true)
    }))

  it.scoped("counts a malformed super-packet as encap_bad_offload", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const a = yield* host(underlay, A, { v4: true, remote: B }, { offload: true })
      const frame = Ref.superFrame({ src: "198.51.100.1", dst: "198.51.100.2", payload: new Uint8Array(4000) }, 1440)
      frame[12 + 9] = 17 // says TCP segmentation, carries UDP
      yield* a.tun.injectFrame(frame)
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
      expect((yield* a.tunnel.counters).drops).toEqual({ encap_bad_offload: 1 })
    }))
})

describe("Tunnel supervision", () => {
  it.scoped("a defect inside a data-path fiber fails the whole tunnel, loudly, instead of leaving half a tunnel", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const tun = yield* TunDeviceTest.make({ name: `ktun${++tunnels}` })
      const net = yield* underlay.host(v4(A))
      const tunnel = yield* Tunnel.make(config({ v4: true })).pipe(
        Effect.provide(Layer.mergeAll(
          TunDeviceTest.layer(tun),
          Layer.succeed(RawSockets, net.rawSockets),
          HostAddressesTest.layer(),
          // a bug in the route mirror: its lookup throws
          Layer.succeed(RouteTable, {
            lookup4: () => {
              throw new Error("route mirror bug")
            },
            lookup6: () => -1,
            size: () => ({ v4: 0, v6: 0 })
          }),
          ResolverTest.none
        ))
      )
      yield* tun.inject(ipv4Packet({ src: "198.51.100.1", dst: "203.0.113.9" }))
      const exit = yield* Effect.exit(tunnel.failure)
      expect(exit._tag).toBe("Failure")
      expect(String(exit._tag === "Failure" ? Cause.pretty(exit.cause) : "")).toContain("route mirror bug")
    }))

  it.scoped("a data-path error (the TUN device gone) fails the tunnel with a TunnelError", () =>
    Effect.gen(function*() {
      const underlay = yield* UnderlayTest.make
      const net = yield* underlay.host(v4(A))
      const gone = TunDevice.of({
        name: `ktun${++tunnels}`,
        ifindex: 9,
        mtu: 1480,
        offload: false,
        offloadUdp: false,
        readBatch: Effect.fail(new TunError({ op: "read", errno: 77, message: "read ktun: EBADFD" })),
        writeBatch: () => Effect.succeed({ written: 0, failed: 0, lastErrno: 0 })
      })
      const tunnel = yield* Tunnel.make(config({ v4: true, remote: B })).pipe(
        Effect.provide(Layer.mergeAll(
          Layer.succeed(TunDevice, gone),
          Layer.succeed(RawSockets, net.rawSockets),
          HostAddressesTest.layer(),
          RouteTableTest.empty,
          ResolverTest.none
        ))
      )
      const error = yield* Effect.flip(tunnel.failure)
      expect(error._tag).toBe("TunnelError")
      expect(error.message).toContain("EBADFD")
    }))
})
