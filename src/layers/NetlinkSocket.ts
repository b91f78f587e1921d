/**
 * A non-blocking NETLINK_ROUTE socket on the event loop: requests with ACK checking (device setup) and a datagram
 * reader for dumps and multicast notifications (address and route mirrors).
 */
import { Data, Duration, Effect, Either } from "effect"
import type { Scope } from "effect"
import * as Netlink from "../domain/Netlink.js"
import * as Ffi from "./Ffi.js"

export class NetlinkSocketError extends Data.TaggedError("NetlinkSocketError")<{
  readonly op: "open" | "send" | "receive" | "request"
  readonly errno: number
  readonly message: string
}> {}

export interface NetlinkSocket {
  /** Next sequence number for a request on this socket. */
  readonly nextSeq: () => number
  readonly send: (msg: Uint8Array) => Effect.Effect<void, NetlinkSocketError>
  /**
   * Waits for one datagram from the kernel and returns it (a view, valid until the next `receive`). A datagram
   * larger than the buffer fails with ENOBUFS, like an overrun: either way messages were lost.
   */
  readonly receive: Effect.Effect<Uint8Array, NetlinkSocketError>
  /**
   * Sends the request `build(seq)` (which must ask for NLM_F_ACK) and waits for its NLMSG_ERROR; a non-zero error
   * fails with that errno and the kernel's extended-ACK text, prefixed by `what`. Other messages arriving meanwhile
   * are skipped.
   */
  readonly request: (what: string, build: (seq: number) => Uint8Array) => Effect.Effect<void, NetlinkSocketError>
}

export interface NetlinkSocketOptions {
  /** RTMGRP_* bitmask to subscribe to; 0 for a request-only socket. */
  readonly groups: number
  /** Receive buffer (SO_RCVBUF) to ask for; the kernel default is small for a busy routing table. */
  readonly rcvbuf?: number
}

/** Dump replies are at most 32 KiB per datagram (netlink caps max_recvmsg_len there); notifications are small. */
const RECV_BUFFER = 64 * 1024
const REQUEST_TIMEOUT = Duration.seconds(5)

export const open = (
  lib: Ffi.Libc,
  opts: NetlinkSocketOptions
): Effect.Effect<NetlinkSocket, NetlinkSocketError, Scope.Scope> =>
  Effect.gen(function*() {
    const error = (op: NetlinkSocketError["op"], errno: number, what: string) =>
      new NetlinkSocketError({ op, errno, message: `${what}: ${Ffi.describeErrno(lib, errno)}` })

    const fd = yield* Effect.acquireRelease(
      Effect.suspend(() => {
        const r = lib.socket(Ffi.AF_NETLINK, Ffi.SOCK_RAW | Ffi.SOCK_NONBLOCK | Ffi.SOCK_CLOEXEC, Ffi.NETLINK_ROUTE)
        return r < 0 ? Effect.fail(error("open", -r, "socket(AF_NETLINK, NETLINK_ROUTE)")) : Effect.succeed(r)
      }),
      (fd) => Effect.sync(() => lib.close(fd))
    )

    // Best effort: the extended ACK only improves messages, and the larger buffer only makes overruns rarer.
    lib.setsockoptInt(fd, Ffi.SOL_NETLINK, Ffi.NETLINK_EXT_ACK, 1)
    if (opts.rcvbuf !== undefined && lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUFFORCE, opts.rcvbuf) < 0) {
      lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUF, opts.rcvbuf)
    }

    const local = sockaddrNl(0, opts.groups)
    const bound = lib.bind(fd, local)
    if (bound < 0) return yield* error("open", -bound, "bind(AF_NETLINK)")

    const poller = yield* Ffi.makePoller(fd).pipe(
      Effect.mapError((e) => new NetlinkSocketError({ op: "open", errno: e.errno, message: e.message }))
    )

    const kernel = sockaddrNl(0, 0)
    const from = new Uint8Array(Ffi.SOCKADDR_NL_SIZE)
    const fromView = new DataView(from.buffer)
    const buffer = new Uint8Array(new ArrayBuffer(RECV_BUFFER))
    let seq = 0

    const send = (msg: Uint8Array): Effect.Effect<void, NetlinkSocketError> =>
      Effect.suspend(() => {
        for (;;) {
          const r = lib.sendto(fd, msg, 0, kernel)
          if (r >= 0) return Effect.void
          if (-r === Ffi.Errno.EINTR) continue
          // requests to the kernel are handled inside sendto; EAGAIN means the socket's buffer is full of replies
          if (-r === Ffi.Errno.EAGAIN) return Effect.zipRight(poller.writable, send(msg))
          return Effect.fail(error("send", -r, "sendto(netlink)"))
        }
      })

    const receive: Effect.Effect<Uint8Array, NetlinkSocketError> = Effect.suspend(() => {
      for (;;) {
        // MSG_TRUNC: the return value is the datagram's real length, so a cut datagram is detected
        const r = lib.recvfrom(fd, buffer, Ffi.MSG_TRUNC, from)
        if (r >= 0) {
          // only the kernel (port 0) speaks for the routing tables; ignore anything another process sends us
          if (fromView.getUint32(4, true) !== 0) continue
          if (r > buffer.length) {
            return Effect.fail(error("receive", Ffi.Errno.ENOBUFS, `netlink datagram of ${r} bytes was truncated`))
          }
          return Effect.succeed(buffer.subarray(0, r))
        }
        if (-r === Ffi.Errno.EINTR) continue
        if (-r === Ffi.Errno.EAGAIN) return Effect.zipRight(poller.readable, receive)
        return Effect.fail(error("receive", -r, "recvfrom(netlink)"))
      }
    })

    const awaitAck = (want: number, what: string): Effect.Effect<void, NetlinkSocketError> =>
      Effect.flatMap(receive, (datagram) => {
        const msgs = Netlink.splitMessages(datagram)
        if (Either.isLeft(msgs)) return awaitAck(want, what)
        for (const m of msgs.right) {
          if (m.seq !== want || m.type !== Netlink.NLMSG_ERROR) continue
          const reply = Netlink.parseError(m)
          if (Either.isLeft(reply)) {
            return Effect.fail(error("request", Ffi.Errno.EIO, `${what}: malformed NLMSG_ERROR`))
          }
          if (reply.right.errno === 0) return Effect.void
          const detail = reply.right.message === "" ? "" : ` (${reply.right.message})`
          return Effect.fail(
            new NetlinkSocketError({
              op: "request",
              errno: reply.right.errno,
              message: `${what}: ${Ffi.describeErrno(lib, reply.right.errno)}${detail}`
            })
          )
        }
        return awaitAck(want, what)
      })

    const request = (what: string, build: (seq: number) => Uint8Array) =>
      Effect.suspend(() => {
        const s = ++seq
        return send(build(s)).pipe(
          Effect.zipRight(awaitAck(s, what)),
          Effect.timeoutFail({
            duration: REQUEST_TIMEOUT,
            onTimeout: () => error("request", Ffi.Errno.ETIMEDOUT, `${what}: no answer from the kernel`)
          })
        )
      })

    return { nextSeq: () => ++seq, send, receive, request } satisfies NetlinkSocket
  })

/** struct sockaddr_nl: nl_family u16, pad u16, nl_pid u32, nl_groups u32 (host order). */
const sockaddrNl = (pid: number, groups: number): Uint8Array => {
  const out = new Uint8Array(Ffi.SOCKADDR_NL_SIZE)
  const dv = new DataView(out.buffer)
  dv.setUint16(0, Ffi.AF_NETLINK, true)
  dv.setUint32(4, pid, true)
  dv.setUint32(8, groups, true)
  return out
}
