/**
 * An in-memory TUN device. `inject` plays the kernel routing a packet into the device; `takeWritten` returns what
 * the tunnel wrote into it (decapsulated packets and ICMP errors), as copies.
 */
import { Chunk, Effect, Layer, Queue, Ref } from "effect"
import * as Arena from "../domain/Arena.js"
import { HEADROOM } from "../domain/Encap.js"
import * as Gso from "../domain/Gso.js"
import * as VirtioNet from "../domain/VirtioNet.js"
import { TunDevice } from "../services/TunDevice.js"

export interface TunTestOptions {
  readonly name?: string
  readonly ifindex?: number
  readonly mtu?: number
  readonly batch?: number
  /** Behave like a device opened with IFF_VNET_HDR and TSO/checksum offloads. */
  readonly offload?: boolean
  /**
   * With `offload`: UDP segmentation offload is on too (`offloadUdp`), as on Linux 6.2+, so the tunnel may write UDP
   * super-packets (`takeWritten` splits them like the kernel). Default false.
   */
  readonly offloadUdp?: boolean
}

export interface TunTestHandle {
  readonly device: TunDevice["Type"]
  /** The kernel hands a packet to the device (it will be read by the tunnel). */
  readonly inject: (packet: Uint8Array) => Effect.Effect<void>
  /** Offload mode: the kernel hands over a frame that starts with its own virtio_net_hdr (e.g. a super-packet). */
  readonly injectFrame: (frame: Uint8Array) => Effect.Effect<void>
  /**
   * Everything the tunnel wrote since the last call, as the kernel would see it: in offload mode the virtio header
   * is taken off, super-packets are split into their segments and partial checksums are completed.
   */
  readonly takeWritten: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Offload mode: the frames exactly as written (virtio header included), since the last call. */
  readonly takeFrames: Effect.Effect<ReadonlyArray<Uint8Array>>
  /** Waits (polling the in-memory state, yielding between looks) until `n` packets were written, and takes them. */
  readonly awaitWritten: (n: number) => Effect.Effect<ReadonlyArray<Uint8Array>>
}

export const make = (opts: TunTestOptions = {}): Effect.Effect<TunTestHandle> =>
  Effect.gen(function*() {
    const mtu = opts.mtu ?? 1480
    const batch = opts.batch ?? 64
    const offload = opts.offload === true
    const offloadUdp = offload && opts.offloadUdp === true
    const inbound = yield* Queue.bounded<Uint8Array>(4096)
    const written = yield* Ref.make<Array<Uint8Array>>([])
    const frames = yield* Ref.make<Array<Uint8Array>>([])
    // as the Live layer: the packet (after the virtio header in offload mode) has HEADROOM bytes in front of it
    const lead = offload ? HEADROOM - VirtioNet.HEADER_SIZE : HEADROOM
    const slot = HEADROOM + 65536 + 64
    const ring = new Uint8Array(slot * batch)

    /** What the kernel makes of a written frame. */
    const unframe = (frame: Uint8Array): Array<Uint8Array> => {
      if (!offload) return [frame.slice()]
      const hdr = VirtioNet.read(frame, 0, VirtioNet.makeHeader())
      const out: Array<Uint8Array> = []
      const copy = frame.slice()
      Gso.segment(copy.subarray(VirtioNet.HEADER_SIZE), hdr, out, Arena.make(128 * 1024))
      return out.map((p) => p.slice())
    }

    const readBatch = Effect.gen(function*() {
      const first = yield* Queue.take(inbound)
      const rest = yield* Queue.takeUpTo(inbound, batch - 1)
      const out: Array<Uint8Array> = []
      let i = 0
      for (const p of [first, ...rest]) {
        const start = i * slot + lead
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
      offload,
      offloadUdp,
      readBatch,
      writeBatch: (packets) =>
        Effect.sync(() => {
          let failed = 0
          for (const p of packets) {
            // the kernel refuses a write without its virtio header in offload mode (EINVAL)
            if (offload && p.length < VirtioNet.HEADER_SIZE + 20) failed++
          }
          return failed
        }).pipe(
          Effect.tap(() =>
            Ref.update(frames, (f) => {
              for (const p of packets) f.push(p.slice())
              return f
            })
          ),
          Effect.tap(() =>
            Ref.update(written, (w) => {
              for (const p of packets) w.push(...unframe(p))
              return w
            })
          ),
          Effect.map((failed) => ({ written: Chunk.size(packets) - failed, failed, lastErrno: failed > 0 ? 22 : 0 }))
        )
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
      inject: (packet) => {
        if (!offload) return Queue.offer(inbound, packet.slice()).pipe(Effect.asVoid)
        const frame = new Uint8Array(VirtioNet.HEADER_SIZE + packet.length)
        frame.set(packet, VirtioNet.HEADER_SIZE)
        return Queue.offer(inbound, frame).pipe(Effect.asVoid)
      },
      injectFrame: (frame) => Queue.offer(inbound, frame.slice()).pipe(Effect.asVoid),
      takeWritten,
      takeFrames: Ref.getAndSet(frames, []),
      awaitWritten
    }
  })

export const layer = (handle: TunTestHandle): Layer.Layer<TunDevice> => Layer.succeed(TunDevice, handle.device)
