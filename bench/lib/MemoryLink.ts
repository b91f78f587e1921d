/**
 * Lean in-memory devices for timing the tunnel pipeline itself. The test layers of src/layers do per-packet work of
 * their own (an Effect per injected packet and per frame, a recorded copy of every frame), which would be most of
 * what a benchmark over them measures. Here the work outside the tunnel is per batch, plus the one copy per packet
 * that the kernel also makes when a raw socket hands a frame to the other side:
 *
 * - a source TUN device whose reads return a full batch of prepared packets at once, up to a granted budget;
 * - a sink TUN device that only counts what the tunnel writes into it and checks the first packet's bytes;
 * - an underlay joining raw sockets by outer destination and protocol, one bounded queue of batches per socket
 *   (so a slow receiver slows the sender down instead of losing packets), filling in a zero outer source address
 *   like the kernel does for IP_HDRINCL.
 */
import type { Scope } from "effect"
import { Chunk, Deferred, Effect, Queue } from "effect"
import { HEADROOM } from "../../src/domain/Encap.js"
import * as Ipv4 from "../../src/domain/Ipv4.js"
import type { RawSocket, RawSockets, TunnelProto } from "../../src/services/RawSocket.js"
import type { TunDevice } from "../../src/services/TunDevice.js"

export interface SourceTun {
  readonly device: TunDevice["Type"]
  /** Lets the tunnel read `packets` more packets (whole batches, then the rest). */
  readonly grant: (packets: number) => Effect.Effect<void>
}

// Plain packets: no virtio_net_hdr, so the pipeline takes its path without TUN offloads.
const device = (name: string, readBatch: TunDevice["Type"]["readBatch"], writeBatch: TunDevice["Type"]["writeBatch"]) =>
  ({ name, ifindex: 7, mtu: 1480, offload: false, offloadUdp: false, readBatch, writeBatch }) satisfies
    TunDevice["Type"]

/** A TUN device that hands out copies of `template`, `batch` at a time, each with HEADROOM bytes before it. */
export const sourceTun = (name: string, template: Uint8Array, batch: number): Effect.Effect<SourceTun> =>
  Effect.gen(function*() {
    const slot = HEADROOM + template.length
    const ring = new Uint8Array(new ArrayBuffer(slot * batch))
    const views: Array<Uint8Array> = []
    for (let i = 0; i < batch; i++) {
      ring.set(template, i * slot + HEADROOM)
      views.push(ring.subarray(i * slot + HEADROOM, (i + 1) * slot))
    }
    const full = Chunk.unsafeFromArray(views)
    const grants = yield* Queue.unbounded<number>()
    const state = { remaining: 0 }
    const take = Effect.sync((): Chunk.Chunk<Uint8Array> => {
      const n = Math.min(batch, state.remaining)
      state.remaining -= n
      return n === batch ? full : Chunk.unsafeFromArray(views.slice(0, n))
    })
    const readBatch: Effect.Effect<Chunk.Chunk<Uint8Array>> = Effect.suspend(() =>
      state.remaining > 0 ? take : Effect.flatMap(Queue.take(grants), (n) => {
        state.remaining += n
        return take
      })
    )
    return {
      device: device(
        name,
        readBatch,
        (packets) => Effect.succeed({ written: Chunk.size(packets), failed: 0, lastErrno: 0 })
      ),
      grant: (packets) => Queue.offer(grants, packets).pipe(Effect.asVoid)
    }
  })

export interface SinkTun {
  readonly device: TunDevice["Type"]
  /**
   * Starts counting from zero; the Effect it returns completes once `packets` packets were written since, with
   * whether the first of them was `expected`, byte for byte.
   */
  readonly arm: (packets: number, expected: Uint8Array) => Effect.Effect<Effect.Effect<boolean>>
}

/** A TUN device that nobody writes into from the host side (its reads never complete) and that counts writes. */
export const sinkTun = (name: string): Effect.Effect<SinkTun> =>
  Effect.sync(() => {
    const state: {
      count: number
      target: number
      expected: Uint8Array | null
      intact: boolean
      done: Deferred.Deferred<boolean> | null
    } = { count: 0, target: 0, expected: null, intact: true, done: null }
    const writeBatch = (packets: Chunk.Chunk<Uint8Array>) =>
      Effect.suspend(() => {
        const arr = Chunk.toReadonlyArray(packets)
        if (state.expected !== null && arr.length > 0) {
          state.intact = Buffer.compare(arr[0]!, state.expected) === 0
          state.expected = null
        }
        state.count += arr.length
        const report = Effect.succeed({ written: arr.length, failed: 0, lastErrno: 0 })
        if (state.done === null || state.count < state.target) return report
        const done = state.done
        state.done = null
        return Effect.zipRight(Deferred.succeed(done, state.intact), report)
      })
    const arm = (packets: number, expected: Uint8Array) =>
      Effect.map(Deferred.make<boolean>(), (done) => {
        state.count = 0
        state.target = packets
        state.expected = expected
        state.intact = true
        state.done = done
        return Deferred.await(done)
      })
    return { device: device(name, Effect.never, writeBatch), arm }
  })

export interface Link {
  /** The raw sockets of the host with this underlay address. */
  readonly host: (addr: number) => RawSockets["Type"]
}

/** Bytes of one batch's arena: a full batch of 64 frames of up to 2 KB. */
const ARENA = 64 * 2048

interface Socket {
  readonly queue: Queue.Queue<ReadonlyArray<Uint8Array>>
  /** Receive arenas, used in turn: one per batch in the queue, one being read, one being written. */
  readonly arenas: ReadonlyArray<Uint8Array>
  next: number
}

interface Pending {
  readonly socket: Socket
  readonly arena: Uint8Array
  readonly views: Array<Uint8Array>
  offset: number
}

/**
 * An underlay in which a sent frame is copied into an arena of the receiving socket (as the kernel copies it into
 * the receiver's buffer), so the sender may reuse its buffers at once and nothing is allocated per packet but the
 * view handed to the receiver. `depth` batches may wait in a socket's queue before its senders wait.
 */
export const link = (depth = 16): Effect.Effect<Link> =>
  Effect.sync(() => {
    const sockets = new Map<number, Socket>()
    const key = (addr: number, proto: number) => addr * 256 + proto
    // The receiver reads the views of its last batch until it takes the next one, and a sender writes one batch
    // ahead of the full queue: `depth` queued batches need depth + 2 arenas.
    const arenaCount = depth + 2
    const host = (addr: number): RawSockets["Type"] => ({
      open: (proto: TunnelProto): Effect.Effect<RawSocket, never, Scope.Scope> =>
        Effect.gen(function*() {
          const queue = yield* Effect.acquireRelease(
            Queue.bounded<ReadonlyArray<Uint8Array>>(depth),
            (q) => Effect.zipRight(Effect.sync(() => sockets.delete(key(addr, proto))), Queue.shutdown(q))
          )
          const arenas = Array.from({ length: arenaCount }, () => new Uint8Array(new ArrayBuffer(ARENA)))
          sockets.set(key(addr, proto), { queue, arenas, next: 0 })
          const sendBatch = (frames: ReadonlyArray<Uint8Array>) =>
            Effect.suspend(() => {
              const pending: Array<Pending> = []
              let sent = 0
              for (const frame of frames) {
                const socket = sockets.get(key(Ipv4.dst(frame), Ipv4.protocol(frame)))
                if (socket === undefined) continue // nobody listens: the kernel drops it too
                let p = pending.find((e) => e.socket === socket)
                if (p === undefined) {
                  p = { socket, arena: socket.arenas[socket.next++ % arenaCount]!, views: [], offset: 0 }
                  pending.push(p)
                }
                if (p.offset + frame.length > ARENA) continue // more than a batch of 2 KB frames: not in this bench
                p.arena.set(frame, p.offset)
                const copy = p.arena.subarray(p.offset, p.offset + frame.length)
                p.offset += (frame.length + 7) & ~7
                if (Ipv4.src(copy) === 0) {
                  Ipv4.setSrc(copy, addr)
                  Ipv4.computeChecksum(copy)
                }
                p.views.push(copy)
                sent++
              }
              const report = { sent, failures: [] }
              return Effect.as(
                Effect.forEach(pending, (p) => Queue.offer(p.socket.queue, p.views), { discard: true }),
                report
              )
            })
          return {
            proto,
            receiveBatch: Effect.map(Queue.take(queue), (batch) => Chunk.unsafeFromArray(batch)),
            sendBatch,
            takeTruncated: () => 0
          } satisfies RawSocket
        })
    })
    return { host }
  })
