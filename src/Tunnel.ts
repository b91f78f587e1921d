/**
 * The tunnel: two Stream pipelines over chunks of packets (TUN -> encap -> raw socket; raw socket -> decap -> TUN),
 * one Effect per chunk, the packet work done by the pure functions of src/domain.
 */
import type { Scope } from "effect"
import { Cause, Channel, Chunk, Context, Data, Deferred, Effect, Layer, Option, Stream } from "effect"
import { formatIpv4, ipv4FromBytes } from "./domain/Address.js"
import * as Arena from "./domain/Arena.js"
import type { TunnelConfig } from "./domain/Config.js"
import type { DecapContext, DecapOut } from "./domain/Decap.js"
import { decapBatch } from "./domain/Decap.js"
import { Drop, makeCounts } from "./domain/Drops.js"
import type { EncapContext, EncapOut } from "./domain/Encap.js"
import { encapBatch } from "./domain/Encap.js"
import * as Gro from "./domain/Gro.js"
import * as Gso from "./domain/Gso.js"
import { makeRateLimiter } from "./domain/RateLimit.js"
import * as VirtioNet from "./domain/VirtioNet.js"
import type { CounterSnapshot } from "./Metrics.js"
import { flushDrops, formatSnapshot, makeTunnelMetrics, snapshot } from "./Metrics.js"
import * as Peer from "./Peer.js"
import { HostAddresses } from "./services/HostAddresses.js"
import type { RawSocket, TunnelProto } from "./services/RawSocket.js"
import { RawSockets } from "./services/RawSocket.js"
import type { Resolver } from "./services/Resolver.js"
import { RouteTable } from "./services/RouteTable.js"
import type { WriteReport } from "./services/TunDevice.js"
import { TunDevice } from "./services/TunDevice.js"

export class TunnelError extends Data.TaggedError("TunnelError")<{
  readonly reason: "device" | "socket"
  readonly message: string
}> {}

export class Tunnel extends Context.Tag("kiwitun/Tunnel")<Tunnel, {
  readonly ifname: string
  readonly ifindex: number
  readonly counters: Effect.Effect<CounterSnapshot>
  /** Re-resolve the remote host name now (SIGHUP). */
  readonly refreshRemote: Effect.Effect<void>
  /** Fails when the data path stops for good (device removed, socket dead, a defect); never succeeds. */
  readonly failure: Effect.Effect<never, TunnelError>
}>() {}

const EMSGSIZE = 90
/** How long a learned path MTU is trusted before probing the larger one again (the kernel's mtu_expires). */
const PMTU_EXPIRES_MS = 10 * 60 * 1000
const SEND_ERROR_LOG_INTERVAL_MS = 10_000
const NANOS_PER_MS = 1_000_000n

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

export type TunnelDeps = TunDevice | RawSockets | HostAddresses | RouteTable | Resolver

/** Which directions this instance runs (both by default; one each when two threads share the device). */
export interface Directions {
  readonly encap: boolean
  readonly decap: boolean
}

export const make = (
  cfg: TunnelConfig,
  directions: Directions = { encap: true, decap: true }
): Effect.Effect<Tunnel["Type"], TunnelError, TunnelDeps | Scope.Scope> =>
  Effect.gen(function*() {
    const tun = yield* TunDevice
    const rawSockets = yield* RawSockets
    const addresses = yield* HostAddresses
    const routes = yield* RouteTable
    const peer = yield* Peer.make(cfg)
    // read once per chunk with unsafeCurrentTimeNanos (monotonic; the millisecond reading is the wall clock, which
    // may step back): the data path's chunk is one Effect, not one per reading
    const clock = yield* Effect.clock
    const metrics = makeTunnelMetrics(tun.name)
    const failed = yield* Deferred.make<never, TunnelError>()

    const open = (proto: TunnelProto) =>
      rawSockets.open(proto).pipe(
        Effect.mapError((e) => new TunnelError({ reason: "socket", message: e.message }))
      )
    const sock4 = cfg.v4 ? yield* open(4) : undefined
    const sock41 = cfg.v6 ? yield* open(41) : undefined
    // With IP_HDRINCL the protocol comes from the header we write, so one socket sends both kinds.
    const sender: RawSocket = (sock4 ?? sock41)!

    // --- encapsulation state, owned by the encap fiber ---
    const fixed = cfg.remote._tag !== "Dynamic"
    let currentRemote = 0
    const pmtu = new Map<number, { mtu: number; expiresMs: number }>()
    let fragmentId = 1
    let local4: ReadonlySet<number> = new Set()
    const ctx: Mutable<EncapContext> = {
      v4: cfg.v4,
      v6: cfg.v6,
      ttl: cfg.ttl,
      local: cfg.local,
      remoteOf: (inner, version) => {
        if (fixed) return currentRemote
        const gw = version === 4 ? routes.lookup4(ipv4FromBytes(inner, 16)) : routes.lookup6(inner, 24)
        return gw > 0 ? gw : 0
      },
      pathMtuOf: (remote) => {
        const e = pmtu.get(remote)
        if (e === undefined) return cfg.mtu + 20
        if (e.expiresMs <= ctx.nowMs) {
          pmtu.delete(remote)
          return cfg.mtu + 20
        }
        return e.mtu
      },
      tunnelMtu: cfg.mtu,
      tunAddr4: 0,
      tunAddr6: null,
      isLocal4: (a) => local4.has(a),
      icmpLimiter: makeRateLimiter(cfg.icmpRatePerSecond, cfg.icmpBurst, 0),
      nowMs: 0,
      nextFragmentId: () => {
        fragmentId = (fragmentId % 0xffff) + 1
        return fragmentId
      }
    }
    const encapOut: EncapOut = { frames: [], replies: [], drops: makeCounts() }
    const retryOut: EncapOut = { frames: [], replies: [], drops: encapOut.drops }
    let lastSendErrorLogMs = -SEND_ERROR_LOG_INTERVAL_MS
    let sendErrorsSinceLog = 0

    const deviceError = (e: { readonly message: string }) => new TunnelError({ reason: "device", message: e.message })
    const socketError = (e: { readonly message: string }) => new TunnelError({ reason: "socket", message: e.message })

    const writeReplies = (replies: Array<Uint8Array>) => {
      if (replies.length === 0) return Effect.void
      // With offloads every write starts with a virtio_net_hdr: an all-zero one for a plain packet.
      const copy = tun.offload ? replies.map(withPlainVirtioHeader) : replies.slice()
      replies.length = 0
      return tun.writeBatch(Chunk.unsafeFromArray(copy)).pipe(
        Effect.map((r) => metrics.icmpSent.unsafeUpdate(r.written, [])),
        Effect.mapError(deviceError)
      )
    }

    const sendFrames = (frames: Array<Uint8Array>): Effect.Effect<void, TunnelError> => {
      if (frames.length === 0) return Effect.void
      return sender.sendBatch(frames).pipe(
        Effect.mapError(socketError),
        Effect.flatMap((report) => {
          let bytes = 0
          for (const f of frames) bytes += f.length
          if (report.failures.length === 0) {
            metrics.encapPackets.unsafeUpdate(frames.length, [])
            metrics.encapBytes.unsafeUpdate(bytes, [])
            frames.length = 0
            return Effect.void
          }
          retryOut.frames.length = 0
          const retry: Array<Uint8Array> = []
          let lastErrno = 0
          for (const f of report.failures) {
            const frame = frames[f.index]!
            bytes -= frame.length
            const isFragment = (frame[6]! & 0x3f) !== 0 || frame[7] !== 0
            if (f.errno === EMSGSIZE && f.mtu >= 68 && frame.length > f.mtu && !isFragment) {
              // The kernel told us the path MTU: remember it and answer / fragment this packet like the next ones.
              pmtu.set(ipv4FromBytes(frame, 16), { mtu: f.mtu, expiresMs: ctx.nowMs + PMTU_EXPIRES_MS })
              retry.push(frame.subarray(20))
            } else {
              encapOut.drops[Drop.EncapSendError]! += 1
              sendErrorsSinceLog++
              lastErrno = f.errno
            }
          }
          metrics.encapPackets.unsafeUpdate(report.sent, [])
          metrics.encapBytes.unsafeUpdate(bytes, [])
          frames.length = 0
          const logged = lastErrno !== 0 && ctx.nowMs - lastSendErrorLogMs >= SEND_ERROR_LOG_INTERVAL_MS
            ? Effect.logWarning("send failed").pipe(
              Effect.annotateLogs({ errno: lastErrno, count: sendErrorsSinceLog }),
              Effect.tap(() => {
                lastSendErrorLogMs = ctx.nowMs
                sendErrorsSinceLog = 0
              })
            )
            : Effect.void
          if (retry.length === 0) return logged
          encapBatch(retry, ctx, retryOut)
          const again = retryOut.frames.slice()
          retryOut.frames.length = 0
          return logged.pipe(
            Effect.zipRight(writeReplies(retryOut.replies)),
            Effect.zipRight(again.length > 0 ? sendFrames(again) : Effect.void)
          )
        })
      )
    }

    // TUN offloads: super-packets are segmented here (software GSO) into an arena reused for every chunk.
    const segments: Array<Uint8Array> = []
    const gsoArena = Arena.make(tun.offload ? cfg.batch * 72 * 1024 : 0)

    const flushEncapDrops = Effect.sync(() => flushDrops(metrics, encapOut.drops))

    // One Effect per chunk: the packet work is synchronous; only the send and the replies' write are Effects.
    const encapChunk = (chunk: Chunk.Chunk<Uint8Array>): Effect.Effect<void, TunnelError> =>
      Effect.suspend(() => {
        const snap = addresses.latest()
        currentRemote = peer.latest()
        ctx.nowMs = Number(clock.unsafeCurrentTimeNanos() / NANOS_PER_MS)
        ctx.tunAddr4 = snap.tun4
        ctx.tunAddr6 = snap.tun6
        local4 = snap.local4
        const read = Chunk.toReadonlyArray(chunk)
        metrics.tunRxPackets.unsafeUpdate(read.length, [])
        let packets = read
        if (tun.offload) {
          segments.length = 0
          encapOut.drops[Drop.EncapBadOffload]! += Gso.segmentBatch(read, segments, gsoArena)
          packets = segments
        }
        encapBatch(packets, ctx, encapOut)
        return sendFrames(encapOut.frames).pipe(
          Effect.zipRight(writeReplies(encapOut.replies)),
          Effect.zipRight(flushEncapDrops)
        )
      })

    const decapPipeline = (sock: RawSocket) => {
      const dctx: Mutable<DecapContext> = { v4: cfg.v4, v6: cfg.v6, remote: 0, local: cfg.local }
      const out: DecapOut = { packets: [], drops: makeCounts() }
      // TUN offloads: consecutive TCP segments of a flow are coalesced (software GRO) into one write. Without them,
      // TCP super-packets this host's GRO built before the raw socket got them are cut again (Gro.superPacketL4).
      const coalesced: Array<Uint8Array> = []
      const groArena = Arena.make(cfg.batch * (cfg.mtu + 64))
      const afterWrite = (report: WriteReport) => {
        const count = out.packets.length
        let bytes = 0
        for (const p of out.packets) bytes += p.length
        // (the packets are views into the receive ring, written by now; `writes` may be this very array)
        out.packets.length = 0
        // Failed writes are rare (counted as drops); which inner packets they held is not told apart.
        metrics.decapPackets.unsafeUpdate(report.failed === 0 ? count : report.written, [])
        metrics.decapBytes.unsafeUpdate(report.failed === 0 ? bytes : 0, [])
        out.drops[Drop.DecapWriteError]! += report.failed
        flushDrops(metrics, out.drops)
      }
      // One Effect per chunk: the packet work is synchronous; only the TUN write is an Effect.
      const decapChunk = (chunk: Chunk.Chunk<Uint8Array>): Effect.Effect<void, TunnelError> =>
        Effect.suspend(() => {
          dctx.remote = fixed ? peer.latest() : 0
          // A fixed remote that is not resolved yet accepts nothing (0 would mean "any").
          if (fixed && dctx.remote === 0) dctx.remote = 0xffffffff
          const frames = Chunk.toReadonlyArray(chunk)
          metrics.netRxPackets.unsafeUpdate(frames.length, [])
          out.drops[Drop.DecapOversize]! += sock.takeTruncated()
          decapBatch(frames, sock.proto, dctx, out)
          if (out.packets.length === 0) {
            flushDrops(metrics, out.drops)
            return Effect.void
          }
          let writes: Array<Uint8Array> = out.packets
          if (tun.offload) {
            coalesced.length = 0
            // decapBatch's views have the outer header in front of them: room for the virtio header
            Gro.coalesce(out.packets, coalesced, groArena, 20, { udp: tun.offloadUdp, mtu: tun.mtu })
            writes = coalesced
          } else {
            coalesced.length = 0
            if (Gro.splitSuperPackets(out.packets, coalesced, groArena, tun.mtu) > 0) writes = coalesced
          }
          return tun.writeBatch(Chunk.unsafeFromArray(writes)).pipe(
            Effect.mapError(deviceError),
            Effect.map(afterWrite)
          )
        })
      return eachChunk(Effect.mapError(sock.receiveBatch, socketError), decapChunk)
    }

    const supervise = <E extends TunnelError>(name: string, effect: Effect.Effect<void, E>) =>
      effect.pipe(
        Effect.zipRight(Effect.fail(new TunnelError({ reason: "device", message: `${name} stopped` }))),
        Effect.catchAllCause((cause) =>
          Cause.isInterruptedOnly(cause) ? Effect.void : Deferred.failCause(failed, cause)
        ),
        Effect.annotateLogs({ tunnel: tun.name, fiber: name }),
        Effect.forkScoped
      )

    if (directions.encap) {
      yield* supervise(
        "encap",
        eachChunk(Effect.mapError(tun.readBatch, deviceError), encapChunk)
      )
    }
    if (directions.decap && sock4 !== undefined) yield* supervise("decap-4in4", decapPipeline(sock4))
    if (directions.decap && sock41 !== undefined) yield* supervise("decap-6in4", decapPipeline(sock41))

    const counters = Effect.sync(() => snapshot(metrics))
    yield* Effect.addFinalizer(() =>
      counters.pipe(
        Effect.flatMap((s) => Effect.logInfo(`counters ${formatSnapshot(s)}`)),
        Effect.annotateLogs({ tunnel: tun.name })
      )
    )
    yield* Effect.logInfo("tunnel up").pipe(
      Effect.annotateLogs({
        tunnel: tun.name,
        mode: [cfg.v4 ? "4in4" : "", cfg.v6 ? "6in4" : ""].filter((m) => m !== "").join("+"),
        remote: cfg.remote._tag === "Address"
          ? formatIpv4(cfg.remote.addr)
          : cfg.remote._tag === "Host"
          ? cfg.remote.name
          : "dynamic",
        mtu: tun.mtu
      })
    )
    return {
      ifname: tun.name,
      ifindex: tun.ifindex,
      counters,
      refreshRemote: peer.refresh,
      failure: Deferred.await(failed)
    }
  })

/**
 * Runs `handle` on every chunk `pull` gives, one after the other, until `pull` or `handle` fails: the Stream of the
 * chunks is a plain channel loop (read a chunk, emit it, again), pulled one chunk at a time. The same as
 * `Stream.repeatEffectChunk(pull).pipe(Stream.runForEachChunk(handle))` with fewer layers of machinery per chunk
 * (no Option wrapping of errors, no unfold state, no sink channel), which is what a chunk of one packet mostly
 * pays for: measured on the in-memory tunnel pipeline with one-packet chunks, about 1.4x the chunks per second.
 */
const eachChunk = <A, E>(
  pull: Effect.Effect<Chunk.Chunk<A>, E>,
  handle: (chunk: Chunk.Chunk<A>) => Effect.Effect<void, E>
): Effect.Effect<void, E> => {
  const chunks: Channel.Channel<Chunk.Chunk<A>, unknown, E, unknown, void, unknown> = Channel.flatMap(
    Channel.fromEffect(pull),
    (chunk) => Channel.zipRight(Channel.write(chunk), Channel.suspend(() => chunks))
  )
  return Effect.scoped(Effect.flatMap(Stream.toPull(Stream.fromChannel(chunks)), (next) => {
    let ended = false
    // the stream never ends by itself; should it, the loop stops and the caller reports the direction as stopped
    const step = Effect.matchEffect(next, {
      onFailure: (e) => Option.isSome(e) ? Effect.fail(e.value) : Effect.sync(() => (ended = true)),
      onSuccess: handle
    })
    return Effect.whileLoop({ while: () => !ended, body: () => step, step: () => {} })
  }))
}

const withPlainVirtioHeader = (packet: Uint8Array): Uint8Array => {
  const framed = new Uint8Array(VirtioNet.HEADER_SIZE + packet.length)
  framed.set(packet, VirtioNet.HEADER_SIZE)
  return framed
}

/** The tunnel over whatever TunDevice, RawSockets, HostAddresses, RouteTable and Resolver the caller provides. */
export const layerWithoutDependencies = (cfg: TunnelConfig): Layer.Layer<Tunnel, TunnelError, TunnelDeps> =>
  Layer.scoped(Tunnel, make(cfg))
