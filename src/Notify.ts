/**
 * Notifications to the service manager (sd_notify(3)): READY=1 once the tunnel is up, STATUS= with a one-line
 * summary, STOPPING=1 on shutdown. One AF_UNIX datagram socket, opened once, to the address in $NOTIFY_SOCKET (a
 * path or an abstract '@name'); without that variable every notification is a no-op.
 */
import type { Scope } from "effect"
import { Context, Effect, Either, Layer } from "effect"
import type { NotifyField } from "./domain/SdNotify.js"
import { notifyAddress, notifyMessage } from "./domain/SdNotify.js"
import * as Ffi from "./layers/Ffi.js"

export class Notifier extends Context.Tag("kiwitun/Notifier")<Notifier, {
  /** Whether a service manager listens (NOTIFY_SOCKET was set and usable). */
  readonly enabled: boolean
  /** Sends the fields as one datagram; a failed send is logged, never fatal. */
  readonly notify: (fields: ReadonlyArray<NotifyField>) => Effect.Effect<void>
}>() {}

const disabled: Notifier["Type"] = { enabled: false, notify: () => Effect.void }

/** A notifier for the socket named `socket` ($NOTIFY_SOCKET); a no-op when it is undefined or empty. */
export const make = (socket: string | undefined): Effect.Effect<Notifier["Type"], never, Scope.Scope> =>
  Effect.gen(function*() {
    if (socket === undefined || socket === "") return disabled
    const address = notifyAddress(socket)
    if (Either.isLeft(address)) {
      yield* Effect.logWarning(`not notifying the service manager: ${address.left}`)
      return disabled
    }
    const lib = Ffi.libc()
    const fd = yield* Effect.acquireRelease(
      Effect.sync(() => lib.socket(Ffi.AF_UNIX, Ffi.SOCK_DGRAM | Ffi.SOCK_CLOEXEC, 0)),
      (fd) => Effect.sync(() => (fd >= 0 ? lib.close(fd) : 0))
    )
    if (fd < 0) {
      yield* Effect.logWarning(`not notifying the service manager: socket(AF_UNIX): ${Ffi.describeErrno(lib, -fd)}`)
      return disabled
    }
    const notify = (fields: ReadonlyArray<NotifyField>) =>
      Effect.suspend(() => {
        const message = notifyMessage(fields)
        // never block the event loop on a busy manager: a lost STATUS= is better than a stalled tunnel
        const r = lib.sendto(fd, Buffer.from(message), Ffi.MSG_DONTWAIT | Ffi.MSG_NOSIGNAL, address.right)
        return r >= 0 ? Effect.void : Effect.logWarning(`notifying the service manager failed`).pipe(
          Effect.annotateLogs({ socket, error: Ffi.describeErrno(lib, -r), message: message.trim() })
        )
      })
    return { enabled: true, notify }
  })

/** The notifier for this process's NOTIFY_SOCKET. */
export const layer: Layer.Layer<Notifier> = Layer.scoped(
  Notifier,
  Effect.suspend(() => make(process.env.NOTIFY_SOCKET))
)

/** No service manager. */
export const layerDisabled: Layer.Layer<Notifier> = Layer.succeed(Notifier, disabled)
