/**
 * An in-memory TUN device. `inject` plays the kernel routing a packet into the device; `takeWritten` returns what
 * the tunnel wrote into it (decapsulated packets and ICMP errors), as copies.
 */
import { Chunk, Effect, Layer, Queue, Ref } from "effect"
import { HEADROOM } from "../domain/Encap.js"
import { TunDevice } from "../services/TunDevice.js"

export interface TunTestOptions {
  readonly name?: string
  readonly ifindex?: number
  readonly mtu?: number
  readonly batch?: number
}

export interface TunTestHandle {
  readonly device: TunDevice["Type"]
  /** The kernel hands a packet to the device (it will be read by the tunnel). */
  readonly inject: (packet: Uint8Array) => Effect.Effect<void>
  /** Everything the tunnel wrote since the last call. */
  readonly takeWritten: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Waits (polling the in-memory state, yielding between looks) until `n` packets were written, and takes them. */
  readonly awaitWritten: (n: number) => Effect.Effect<ReadonlyArray<Uint8Array>>
}

export const make = (opts: TunTestOptions = {}): Effect.Effect<TunTestHandle> =>
  Effect.gen(function*() {
    const mtu = opts.mtu ?? 1480
    const batch = opts.batch ?? 64
    const inbound = yield* Queue.bounded<Uint8Array>(4096)
    const written = yield* Ref.make<Array<Uint8Array>>([])
    const slot = HEADROOM + 65536
    const ring = new Uint8Array(slot * batch)

    const readBatch = Effect.gen(function*() {
      const first = yield* Queue.take(inbound)
      const rest = yield* Queue.takeUpTo(inbound, batch - 1)
      const out: Array<Uint8Array> = []
      let i = 0
      for (const p of [first, ...rest]) {
        const start = i * slot + HEADROOM
        // a real TUN read truncates to the buffer; the ring slot is larger than any packet here
        ring.set(p, start)
        out.push(ring.subarray(start, start + p.length))
        i++
      }
      return Chunk.unsafeFromArray(out)
    })

    const device = TunDevice.of({
      name: opts.name ?? "tun0",
      ifindex: opts.ifindex ?? 7,
      mtu,
      readBatch,
      writeBatch: (packets) =>
        Ref.update(written, (w) => {
          for (const p of packets) w.push(p.slice())
          return w
        }).pipe(Effect.as({ written: Chunk.size(packets), failed: 0, lastErrno: 0 }))
    })

    const takeWritten = Ref.getAndSet(written, [])
    const awaitWritten = (n: number) =>
      Effect.gen(function*() {
        for (let i = 0; i < 10_000; i++) {
          const w = yield* Ref.get(written)
          if (w.length >= n) return yield* takeWritten
          yield* Effect.yieldNow()
        }
        return yield* takeWritten
      })
    return {
      device,
      inject: (packet) => Queue.offer(inbound, packet.slice()).pipe(Effect.asVoid),
      takeWritten,
      awaitWritten
    }
  })

export const layer = (handle: TunTestHandle): Layer.Layer<TunDevice> => Layer.succeed(TunDevice, handle.device)
