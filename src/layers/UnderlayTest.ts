/**
 * An in-memory IPv4 underlay joining any number of hosts, each with its RawSockets. It behaves like the kernel
 * where the tunnel relies on it: a zero source address is filled in with the sending host's address (and the
 * header checksum recomputed), packets go to the host owning the destination and to its socket of that protocol,
 * and a packet larger than the sender's MTU is refused with EMSGSIZE and the MTU.
 */
import { Chunk, Effect, Queue, Ref } from "effect"
import { ipv4FromBytes, ipv4ToBytes } from "../domain/Address.js"
import type { RawSocket, RawSockets, SendFailure, TunnelProto } from "../services/RawSocket.js"

const EMSGSIZE = 90

export interface UnderlayHost {
  readonly addr: number
  readonly rawSockets: RawSockets["Type"]
  /** Deliver a raw frame to this host's socket for the frame's protocol, as if it came from the wire. */
  readonly inject: (frame: Uint8Array) => Effect.Effect<boolean>
  readonly setMtu: (mtu: number) => Effect.Effect<void>
}

export interface Underlay {
  readonly host: (addr: number) => Effect.Effect<UnderlayHost>
  /** Every frame that crossed the underlay (copies), in order. */
  readonly wire: Effect.Effect<ReadonlyArray<Uint8Array>>
}

const headerChecksum = (b: Uint8Array): number => {
  const ihl = (b[0]! & 0x0f) * 4
  let sum = 0
  for (let i = 0; i < ihl; i += 2) if (i !== 10) sum += (b[i]! << 8) | b[i + 1]!
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  return ~sum & 0xffff
}

export const make: Effect.Effect<Underlay> = Effect.gen(function*() {
  const sockets = new Map<string, Queue.Queue<Uint8Array>>()
  const wire = yield* Ref.make<Array<Uint8Array>>([])
  const key = (addr: number, proto: number) => `${addr}/${proto}`

  const deliver = (frame: Uint8Array): Effect.Effect<boolean> => {
    const q = sockets.get(key(ipv4FromBytes(frame, 16), frame[9]!))
    return q === undefined ? Effect.succeed(false) : Queue.offer(q, frame)
  }

  const host = (addr: number) =>
    Effect.gen(function*() {
      const mtu = yield* Ref.make(1500)
      const open = (proto: TunnelProto) =>
        Effect.gen(function*() {
          const q = yield* Queue.dropping<Uint8Array>(4096)
          sockets.set(key(addr, proto), q)
          yield* Effect.addFinalizer(() => Effect.sync(() => sockets.delete(key(addr, proto))))
          const socket: RawSocket = {
            proto,
            receiveBatch: Effect.gen(function*() {
              const first = yield* Queue.take(q)
              const rest = yield* Queue.takeUpTo(q, 63)
              return Chunk.prepend(rest, first)
            }),
            sendBatch: (frames) =>
              Effect.gen(function*() {
                const limit = yield* Ref.get(mtu)
                const failures: Array<SendFailure> = []
                let sent = 0
                for (let i = 0; i < frames.length; i++) {
                  const f = frames[i]!.slice()
                  if (f.length > limit) {
                    failures.push({ index: i, errno: EMSGSIZE, mtu: limit })
                    continue
                  }
                  if (ipv4FromBytes(f, 12) === 0) ipv4ToBytes(addr, f, 12)
                  f[2] = f.length >>> 8
                  f[3] = f.length & 0xff
                  const c = headerChecksum(f)
                  f[10] = c >>> 8
                  f[11] = c & 0xff
                  // the receiver may write into its copy (e.g. a virtio header in front of the inner packet)
                  yield* Ref.update(wire, (w) => (w.push(f.slice()), w))
                  yield* deliver(f)
                  sent++
                }
                return { sent, failures }
              }),
            takeTruncated: () => 0
          }
          return socket
        })
      return {
        addr,
        rawSockets: { open },
        inject: (frame: Uint8Array) => deliver(frame.slice()),
        setMtu: (m: number) => Ref.set(mtu, m)
      } satisfies UnderlayHost
    })

  return { host, wire: Ref.get(wire) }
})
