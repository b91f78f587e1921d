/**
 * Raw IPv4 sockets (IP_HDRINCL) for the outer packets, driven in batches: recvmmsg into 64 KiB slots and sendmmsg
 * with one sockaddr_in per message, all laid out once per socket in large ArrayBuffers.
 */
import { Chunk, Effect, Layer } from "effect"
import type { Scope } from "effect"
import type { RawSocket, SendFailure, SendReport, TunnelProto } from "../services/RawSocket.js"
import { RawSocketError, RawSockets } from "../services/RawSocket.js"
import * as Ffi from "./Ffi.js"

const BATCH = 64
/**
 * A received outer packet can exceed the link MTU (IPIP GRO on a physical NIC hands over coalesced packets), so
 * slots take the largest IPv4 packet; anything still larger arrives with MSG_TRUNC and is counted, not delivered.
 */
const RECV_SLOT = 65536
const MAX_IPV4 = 65535
const SOCKET_BUFFER = 4 * 1024 * 1024
const ERR_DATA = 256
const ERR_CONTROL = 512
/** Error-queue entries read per drain; more wait for the next one. */
const ERR_DRAIN_MAX = 64
/** Receive batches between two unconditional error-queue drains, so a steady flow cannot let it fill. */
const ERR_DRAIN_EVERY = 64

const SO_EE_ORIGIN_LOCAL = 1
const SO_EE_ORIGIN_ICMP = 2

/** errno values after which the socket is unusable. */
const DEAD: ReadonlySet<number> = new Set([Ffi.Errno.EBADF, Ffi.Errno.ENOTSOCK, Ffi.Errno.EFAULT])

/** A configured raw socket for `proto` (IP_HDRINCL, IP_RECVERR, 4 MiB buffers); closed when the scope closes. */
export const openFd = (proto: TunnelProto): Effect.Effect<number, RawSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const error = (op: RawSocketError["op"], errno: number, what: string) =>
      new RawSocketError({ op, proto, errno, message: `${what}: ${Ffi.describeErrno(lib, errno)}` })

    const fd = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const r = lib.socket(Ffi.AF_INET, Ffi.SOCK_RAW | Ffi.SOCK_NONBLOCK | Ffi.SOCK_CLOEXEC, proto)
        return r < 0 ? Effect.fail(error("open", -r, `socket(AF_INET, SOCK_RAW, ${proto})`)) : Effect.succeed(r)
      }),
      (fd) => Effect.sync(() => lib.close(fd))
    )

    const hdrincl = lib.setsockoptInt(fd, Ffi.SOL_IP, Ffi.IP_HDRINCL, 1)
    if (hdrincl < 0) return yield* error("configure", -hdrincl, "IP_HDRINCL")
    // IP_RECVERR queues EMSGSIZE (with the device MTU) and ICMP errors on the error queue, instead of losing them
    const recverr = lib.setsockoptInt(fd, Ffi.SOL_IP, Ffi.IP_RECVERR, 1)
    if (recverr < 0) return yield* error("configure", -recverr, "IP_RECVERR")
    // the default ~208 KiB drops bursts; the FORCE variants pass rmem_max/wmem_max but need CAP_NET_ADMIN
    if (lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUFFORCE, SOCKET_BUFFER) < 0) {
      lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUF, SOCKET_BUFFER)
    }
    if (lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_SNDBUFFORCE, SOCKET_BUFFER) < 0) {
      lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_SNDBUF, SOCKET_BUFFER)
    }
    return fd
  })

const open = (proto: TunnelProto): Effect.Effect<RawSocket, RawSocketError, Scope.Scope> =>
  Effect.flatMap(openFd(proto), (fd) => attach(fd, proto))

/**
 * The service over a raw socket opened elsewhere (by `openFd`, possibly in another thread of this process). Watches
 * the fd until the scope closes; never closes it.
 */
export const attach = (fd: number, proto: TunnelProto): Effect.Effect<RawSocket, RawSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const error = (op: RawSocketError["op"], errno: number, what: string) =>
      new RawSocketError({ op, proto, errno, message: `${what}: ${Ffi.describeErrno(lib, errno)}` })

    const poller = yield* Ffi.makePoller(fd).pipe(
      Effect.mapError((e) => new RawSocketError({ op: "open", proto, errno: e.errno, message: e.message }))
    )

    const rx = receiveLayout()
    const err = errorQueueLayout()
    const tx = sendLayout()
    // which frame each message of the batch in `tx` is: filled and read within one synchronous stretch of a send
    // (never across a wait), like `tx` itself, so one per socket serves every caller
    const indexOf = new Int32Array(BATCH)
    let truncated = 0
    let batches = 0

    /** Empties the error queue; returns the MTU of the last EMSGSIZE entry (local or ICMP), 0 if none. */
    const drainErrors = (): number => {
      let mtu = 0
      for (let n = 0; n < ERR_DRAIN_MAX; n++) {
        err.dv.setUint32(40, ERR_CONTROL, true) // msg_controllen is in-out
        err.dv.setUint32(44, 0, true)
        err.dv.setInt32(48, 0, true)
        const r = lib.recvmsg(fd, err.msghdr, Ffi.MSG_ERRQUEUE | Ffi.MSG_DONTWAIT)
        if (r < 0) {
          if (-r === Ffi.Errno.EINTR) continue
          break
        }
        const info = extendedError(err)
        if (
          info !== undefined && info.errno === Ffi.Errno.EMSGSIZE &&
          (info.origin === SO_EE_ORIGIN_LOCAL || info.origin === SO_EE_ORIGIN_ICMP)
        ) {
          mtu = info.info
        }
      }
      return mtu
    }

    const receiveBatch: Effect.Effect<Chunk.Chunk<Uint8Array>, RawSocketError> = Effect.suspend(() => {
      // a bounded number of soft errors (ICMP errors reported through sk_err) before waiting again
      for (let attempt = 0; attempt < 8; attempt++) {
        const n = lib.recvmmsg(fd, rx.vector, BATCH, Ffi.MSG_DONTWAIT)
        if (n > 0) {
          if (++batches % ERR_DRAIN_EVERY === 0) drainErrors()
          const out: Array<Uint8Array> = []
          for (let i = 0; i < n; i++) {
            const flags = rx.dv.getInt32(i * Ffi.MMSGHDR_SIZE + 48, true)
            const len = rx.dv.getUint32(i * Ffi.MMSGHDR_SIZE + 56, true)
            if ((flags & Ffi.MSG_TRUNC) !== 0) truncated++
            else out.push(new Uint8Array(rx.buffer, rx.slot(i), len))
          }
          if (out.length > 0) return Effect.succeed(Chunk.unsafeFromArray(out))
          continue
        }
        const errno = n === 0 ? Ffi.Errno.EAGAIN : -n
        if (errno === Ffi.Errno.EINTR) continue
        if (DEAD.has(errno) || errno === Ffi.Errno.EINVAL) {
          return Effect.fail(error("receive", errno, `recvmmsg(proto ${proto})`))
        }
        // POLLERR stays raised while the error queue holds entries: empty it before sleeping on readability
        drainErrors()
        if (errno === Ffi.Errno.EAGAIN) break
      }
      return Effect.zipRight(poller.readable, receiveBatch)
    })

    const sendBatch = (frames: ReadonlyArray<Uint8Array>): Effect.Effect<SendReport, RawSocketError> =>
      Effect.suspend(() => {
        const failures: Array<SendFailure> = []
        let sent = 0
        let next = 0
        /** frames before this index have been looked at: a refused one among them has its failure already */
        let examined = 0

        const step: Effect.Effect<SendReport, RawSocketError> = Effect.suspend(() => {
          while (next < frames.length) {
            let count = 0
            let idx = next
            while (count < BATCH && idx < frames.length) {
              const length = frames[idx]!.length
              if (length >= 20 && length <= MAX_IPV4) {
                tx.place(count, frames[idx]!)
                indexOf[count++] = idx
              } else if (idx >= examined) {
                // no kernel would take it: refused once, skipped when a batch is refilled after a failure
                failures.push({ index: idx, errno: length < 20 ? Ffi.Errno.EINVAL : Ffi.Errno.EMSGSIZE, mtu: 0 })
              }
              idx++
            }
            if (idx > examined) examined = idx
            if (count === 0) {
              next = idx
              continue
            }
            const r = lib.sendmmsg(fd, tx.vector, count, Ffi.MSG_DONTWAIT)
            if (r === count) {
              sent += count
              next = idx
              continue
            }
            // Stopped short: the failing message is sent once more, alone, before it counts as failed. sendmmsg
            // keeps the errno only when nothing was sent; and a send first hands back the socket's pending error,
            // dropping the message it was given: with IP_RECVERR every ICMP error about an earlier packet (a
            // remote without a tunnel endpoint answers each one with protocol unreachable) is left there as well
            // as queued (raw_err), and the resend finds it cleared.
            const done = r > 0 ? r : 0
            sent += done
            const failing = indexOf[done]!
            // (a full send buffer is never a pending report: then the resend would only meet it again)
            const single = r < 0 && -r === Ffi.Errno.EAGAIN ? r : lib.sendmsg(fd, tx.msghdr(done), Ffi.MSG_DONTWAIT)
            if (single >= 0) {
              sent++
              next = failing + 1
              continue
            }
            const errno = -single
            if (errno === Ffi.Errno.EINTR) {
              next = failing
              continue
            }
            if (errno === Ffi.Errno.EAGAIN) {
              next = failing
              // a pending error-queue entry raises POLLERR, which would wake this wait at once and keep waking it
              drainErrors()
              return Effect.zipRight(poller.writable, step)
            }
            if (DEAD.has(errno)) return Effect.fail(error("send", errno, `sendmmsg(proto ${proto})`))
            // with IP_HDRINCL the kernel checks the packet against the device MTU and queues that MTU as ee_info
            const mtu = drainErrors()
            failures.push({ index: failing, errno, mtu: errno === Ffi.Errno.EMSGSIZE ? mtu : 0 })
            next = failing + 1
          }
          return Effect.succeed({ sent, failures: failures.sort((a, b) => a.index - b.index) })
        })
        return step
      })

    const takeTruncated = () => {
      const n = truncated
      truncated = 0
      return n
    }

    return { proto, receiveBatch, sendBatch, takeTruncated } satisfies RawSocket
  })

/** `open(proto)` creates a socket per call, closed with the caller's scope. */
export const make: Effect.Effect<RawSockets["Type"]> = Effect.sync(() => RawSockets.of({ open }))

export const layer: Layer.Layer<RawSockets> = Layer.effect(RawSockets, make)

// ---------------------------------------------------------------------------------------------------------------
// Layouts. Pointers inside a layout point into the same ArrayBuffer, which V8 never moves.

interface ReceiveLayout {
  readonly buffer: ArrayBuffer
  readonly dv: DataView
  /** The mmsghdr array, passed to recvmmsg. */
  readonly vector: Uint8Array
  readonly slot: (i: number) => number
}

const receiveLayout = (): ReceiveLayout => {
  const iovecs = BATCH * Ffi.MMSGHDR_SIZE
  const slots = iovecs + BATCH * Ffi.IOVEC_SIZE
  const buffer = new ArrayBuffer(slots + BATCH * RECV_SLOT)
  const dv = new DataView(buffer)
  const base = Ffi.addressOf(buffer)
  const slot = (i: number) => slots + i * RECV_SLOT
  for (let i = 0; i < BATCH; i++) {
    const m = i * Ffi.MMSGHDR_SIZE
    const iov = iovecs + i * Ffi.IOVEC_SIZE
    Ffi.writePointer(dv, iov, base + slot(i))
    Ffi.writeSize(dv, iov + 8, RECV_SLOT)
    Ffi.writePointer(dv, m + 16, base + iov) // msg_iov
    Ffi.writeSize(dv, m + 24, 1) // msg_iovlen
  }
  return { buffer, dv, vector: new Uint8Array(buffer, 0, iovecs), slot }
}

interface ErrorQueueLayout {
  readonly dv: DataView
  readonly msghdr: Uint8Array
  readonly control: number
}

const errorQueueLayout = (): ErrorQueueLayout => {
  const iov = Ffi.MSGHDR_SIZE
  const data = iov + Ffi.IOVEC_SIZE
  const control = data + ERR_DATA
  const buffer = new ArrayBuffer(Math.max(control + ERR_CONTROL, Ffi.LARGE_BUFFER))
  const dv = new DataView(buffer)
  const base = Ffi.addressOf(buffer)
  Ffi.writePointer(dv, iov, base + data)
  Ffi.writeSize(dv, iov + 8, ERR_DATA)
  Ffi.writePointer(dv, 16, base + iov)
  Ffi.writeSize(dv, 24, 1)
  Ffi.writePointer(dv, 32, base + control)
  return { dv, msghdr: new Uint8Array(buffer, 0, Ffi.MSGHDR_SIZE), control }
}

/** struct sock_extended_err from the IP_RECVERR control message of an error-queue read. */
const extendedError = (
  err: ErrorQueueLayout
): { readonly errno: number; readonly origin: number; readonly info: number } | undefined => {
  const dv = err.dv
  const controllen = dv.getUint32(40, true)
  let off = 0
  while (off + Ffi.CMSGHDR_SIZE <= controllen && off + Ffi.CMSGHDR_SIZE <= ERR_CONTROL) {
    const len = dv.getUint32(err.control + off, true)
    const level = dv.getInt32(err.control + off + 8, true)
    const type = dv.getInt32(err.control + off + 12, true)
    if (len < Ffi.CMSGHDR_SIZE) return undefined
    if (level === Ffi.SOL_IP && type === Ffi.IP_RECVERR && len >= Ffi.CMSGHDR_SIZE + 16) {
      const e = err.control + off + Ffi.CMSGHDR_SIZE
      if (e + 16 > err.control + ERR_CONTROL) return undefined
      return { errno: dv.getUint32(e, true), origin: dv.getUint8(e + 4), info: dv.getUint32(e + 8, true) }
    }
    off += (len + 7) & ~7
  }
  return undefined
}

interface SendLayout {
  readonly vector: Uint8Array
  /** Points message `i` at `frame` (in place when its buffer is large, else through a staging copy). */
  readonly place: (i: number, frame: Uint8Array) => void
  readonly msghdr: (i: number) => Uint8Array
}

const sendLayout = (): SendLayout => {
  const iovecs = BATCH * Ffi.MMSGHDR_SIZE
  const addrs = iovecs + BATCH * Ffi.IOVEC_SIZE
  const stage = addrs + BATCH * Ffi.SOCKADDR_IN_SIZE
  const buffer = new ArrayBuffer(stage + BATCH * RECV_SLOT)
  const dv = new DataView(buffer)
  const bytes = new Uint8Array(buffer)
  const base = Ffi.addressOf(buffer)
  const headers: Array<Uint8Array> = []
  for (let i = 0; i < BATCH; i++) {
    const m = i * Ffi.MMSGHDR_SIZE
    const sa = addrs + i * Ffi.SOCKADDR_IN_SIZE
    dv.setUint16(sa, Ffi.AF_INET, true) // sin_family; sin_port 0
    Ffi.writePointer(dv, m, base + sa) // msg_name
    dv.setUint32(m + 8, Ffi.SOCKADDR_IN_SIZE, true) // msg_namelen
    Ffi.writePointer(dv, m + 16, base + iovecs + i * Ffi.IOVEC_SIZE) // msg_iov
    Ffi.writeSize(dv, m + 24, 1) // msg_iovlen
    headers.push(new Uint8Array(buffer, m, Ffi.MSGHDR_SIZE))
  }
  // one address per foreign ArrayBuffer; weak, so a dropped buffer is not kept alive
  const addresses = new WeakMap<ArrayBuffer, number>()
  const place = (i: number, frame: Uint8Array) => {
    const sa = addrs + i * Ffi.SOCKADDR_IN_SIZE
    // sin_addr = the header's destination (bytes 16..19, already in network order)
    bytes[sa + 4] = frame[16]!
    bytes[sa + 5] = frame[17]!
    bytes[sa + 6] = frame[18]!
    bytes[sa + 7] = frame[19]!
    const owner = frame.buffer
    let address: number
    if (owner instanceof ArrayBuffer && owner.byteLength >= Ffi.LARGE_BUFFER) {
      let a = addresses.get(owner)
      if (a === undefined) {
        a = Ffi.addressOf(owner)
        addresses.set(owner, a)
      }
      address = a + frame.byteOffset
    } else {
      const at = stage + i * RECV_SLOT
      bytes.set(frame, at)
      address = base + at
    }
    const iov = iovecs + i * Ffi.IOVEC_SIZE
    Ffi.writePointer(dv, iov, address)
    Ffi.writeSize(dv, iov + 8, frame.length)
  }
  return { vector: new Uint8Array(buffer, 0, iovecs), place, msghdr: (i) => headers[i]! }
}
