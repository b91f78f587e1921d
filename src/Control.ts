/**
 * The daemon's control socket: a unix stream socket (mode 0600) on which a client writes one request line and reads
 * one line of JSON back. The only request is `status`, answered with the StatusReport that `kiwitun status` prints.
 * The socket file is removed when the daemon stops; a stale one left by a killed daemon is replaced at start.
 */
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Util from "node:util"
import type { Scope } from "effect"
import { Data, Duration, Effect, Either, Queue, Schema } from "effect"
import type { StatusReport } from "./domain/Status.js"
import { StatusReportJson } from "./domain/Status.js"

/** Where control sockets live unless `--control-socket` says otherwise (systemd's RuntimeDirectory=kiwitun). */
export const CONTROL_DIR = "/run/kiwitun"

export const defaultControlSocket = (ifname: string): string => Path.join(CONTROL_DIR, `${ifname}.sock`)

export class ControlError extends Data.TaggedError("ControlError")<{
  readonly reason: "listen" | "connect" | "protocol"
  readonly message: string
}> {}

const MAX_REQUEST = 256
const REQUEST_TIMEOUT = Duration.seconds(2)

/** "ENOENT (no such file or directory)" for a Node system error, its message otherwise. */
const errnoText = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const e = cause as NodeJS.ErrnoException
  const known = e.errno !== undefined ? Util.getSystemErrorMap().get(e.errno) : undefined
  return known !== undefined ? `${known[0]} (${known[1]})` : e.message
}

const errorCode = (cause: unknown): string | undefined =>
  cause instanceof Error ? (cause as NodeJS.ErrnoException).code : undefined

/** Whether something accepts connections on `path` (a live daemon), as opposed to a stale socket file. */
const isLive = (path: string): Effect.Effect<boolean> =>
  Effect.async<boolean>((resume) => {
    const probe = Net.createConnection(path)
    const done = (live: boolean) => {
      probe.destroy()
      resume(Effect.succeed(live))
    }
    probe.once("connect", () => done(true))
    probe.on("error", () => done(false))
    return Effect.sync(() => probe.destroy())
  }).pipe(Effect.timeout("1 second"), Effect.orElseSucceed(() => true))

export interface ServeOptions {
  /** Owner given to the socket's directory when this call creates it (the user the daemon drops to). */
  readonly owner?: { readonly uid: number; readonly gid: number } | undefined
}

/** Reads one request line from a fresh connection (bounded in size and time). */
const readRequest = (socket: Net.Socket): Effect.Effect<string, ControlError> =>
  Effect.async<string, ControlError>((resume) => {
    let buffer = ""
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString("utf8")
      const nl = buffer.indexOf("\n")
      if (nl >= 0) finish(Effect.succeed(buffer.slice(0, nl).trim()))
      else if (buffer.length > MAX_REQUEST) {
        finish(Effect.fail(new ControlError({ reason: "protocol", message: "request too long" })))
      }
    }
    const onEnd = () => finish(Effect.succeed(buffer.trim()))
    const onError = (cause: Error) =>
      finish(Effect.fail(new ControlError({ reason: "protocol", message: errnoText(cause) })))
    const onClose = () => finish(Effect.fail(new ControlError({ reason: "protocol", message: "closed by the client" })))
    const detach = () => socket.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose)
    const finish = (result: Effect.Effect<string, ControlError>) => {
      detach()
      resume(result)
    }
    socket.on("data", onData).once("end", onEnd).once("error", onError).once("close", onClose)
    return Effect.sync(detach)
  }).pipe(
    Effect.timeoutFail({
      duration: REQUEST_TIMEOUT,
      onTimeout: () => new ControlError({ reason: "protocol", message: "no request within 2 seconds" })
    })
  )

const answer = (socket: Net.Socket, report: Effect.Effect<StatusReport>) =>
  readRequest(socket).pipe(
    Effect.flatMap((request) =>
      request === ""
        ? Effect.succeed(undefined) // connected and left (a liveness probe): nobody to answer
        : request === "status"
        ? Effect.map(report, (r) => JSON.stringify(r))
        : Effect.succeed(JSON.stringify({ error: `unknown request '${request.slice(0, 40)}'; try 'status'` }))
    ),
    Effect.flatMap((line) =>
      Effect.sync(() => {
        if (line !== undefined && socket.writable) socket.end(`${line}\n`)
      })
    ),
    Effect.catchAll((e) => Effect.logDebug("control request failed").pipe(Effect.annotateLogs({ error: e.message }))),
    Effect.ensuring(Effect.sync(() => socket.destroySoon())),
    Effect.annotateLogs({ fiber: "control" })
  )

/**
 * Listens on `path` until the scope closes, answering with `report`; the socket is created with mode 0600 (only its
 * owner and root may ask) and removed at the end.
 */
export const serve = (
  path: string,
  report: Effect.Effect<StatusReport>,
  options: ServeOptions = {}
): Effect.Effect<void, ControlError, Scope.Scope> =>
  Effect.gen(function*() {
    const fail = (message: string) =>
      new ControlError({ reason: "listen", message: `control socket ${path}: ${message}` })
    const dir = Path.dirname(path)
    const created = yield* Effect.try({
      try: () => Fs.mkdirSync(dir, { recursive: true, mode: 0o755 }),
      catch: (cause) => fail(`cannot create ${dir}: ${errnoText(cause)}`)
    })
    // The daemon removes its socket after dropping privileges: the directory it made must be the new user's.
    if (created !== undefined && options.owner !== undefined) {
      const owner = options.owner
      yield* Effect.try({
        try: () => Fs.chownSync(dir, owner.uid, owner.gid),
        catch: (cause) => fail(`cannot hand ${dir} to uid ${owner.uid}: ${errnoText(cause)}`)
      })
    }
    const existing = yield* Effect.sync(() => {
      try {
        return Either.right(Fs.lstatSync(path))
      } catch (cause) {
        return Either.left(cause)
      }
    })
    if (Either.isRight(existing)) {
      if (!existing.right.isSocket()) return yield* fail("exists and is not a socket")
      if (yield* isLive(path)) return yield* fail("in use by another running daemon")
      yield* Effect.try({
        try: () => Fs.unlinkSync(path),
        catch: (cause) => fail(`cannot remove the stale socket: ${errnoText(cause)}`)
      })
      yield* Effect.logInfo("removed a stale control socket").pipe(Effect.annotateLogs({ path }))
    } else if (errorCode(existing.left) !== "ENOENT") {
      return yield* fail(errnoText(existing.left))
    }

    const connections = yield* Queue.dropping<Net.Socket>(16)
    const open = new Set<Net.Socket>()
    const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
      // A client may vanish at any moment (EPIPE, ECONNRESET): an 'error' with no listener would end the daemon.
      socket.on("error", () => undefined)
      // the queue is bounded: a burst of clients beyond it is turned away rather than buffered
      if (!Queue.unsafeOffer(connections, socket)) return socket.destroy()
      open.add(socket)
      socket.once("close", () => open.delete(socket))
    })
    yield* Effect.acquireRelease(
      Effect.async<void, ControlError>((resume) => {
        const onError = (cause: Error) => resume(Effect.fail(fail(errnoText(cause))))
        server.once("error", onError)
        server.once("listening", () => {
          server.off("error", onError)
          resume(Effect.void)
        })
        // bind(2) happens inside listen(), synchronously: the umask makes the file 0600 from its first instant
        const umask = process.umask(0o177)
        try {
          server.listen(path)
        } finally {
          process.umask(umask)
        }
      }),
      () =>
        Effect.async<void>((resume) => {
          // close() waits for every connection to end: a client that never sends must not hold up shutdown
          server.close(() => resume(Effect.void))
          for (const socket of open) socket.destroy()
        }).pipe(
          Effect.timeout("1 second"),
          Effect.ignore,
          Effect.zipRight(Effect.sync(() => {
            try {
              Fs.unlinkSync(path)
              return undefined
            } catch (cause) {
              return errorCode(cause) === "ENOENT" ? undefined : errnoText(cause)
            }
          })),
          Effect.flatMap((problem) =>
            problem === undefined
              ? Effect.void
              : Effect.logWarning("cannot remove the control socket").pipe(
                Effect.annotateLogs({ path, error: problem })
              )
          )
        )
    )
    yield* Effect.sync(() => Fs.chmodSync(path, 0o600))
    yield* Queue.take(connections).pipe(
      Effect.flatMap((socket) => answer(socket, report)),
      Effect.forever,
      Effect.forkScoped
    )
  })

/** Asks the daemon listening on `path` for its status. */
export const query = (
  path: string,
  timeout: Duration.DurationInput = "5 seconds"
): Effect.Effect<StatusReport, ControlError> =>
  Effect.async<string, ControlError>((resume) => {
    let text = ""
    const socket = Net.createConnection(path)
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8")
    })
    socket.once("connect", () => socket.end("status\n"))
    socket.once("end", () => resume(Effect.succeed(text)))
    socket.on("error", (cause) => {
      const code = errorCode(cause)
      const hint = code === "ENOENT"
        ? " (no daemon is listening there: is it running, with this --control-socket?)"
        : code === "ECONNREFUSED"
        ? " (a stale socket: the daemon that made it is gone)"
        : code === "EACCES"
        ? " (the socket is only for the daemon's user and root)"
        : ""
      resume(Effect.fail(new ControlError({ reason: "connect", message: `${path}: ${errnoText(cause)}${hint}` })))
    })
    return Effect.sync(() => socket.destroy())
  }).pipe(
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new ControlError({ reason: "connect", message: `${path}: no answer within ${Duration.format(timeout)}` })
    }),
    Effect.flatMap((text) =>
      Schema.decodeUnknown(StatusReportJson)(text.trim()).pipe(
        Effect.mapError(() =>
          new ControlError({ reason: "protocol", message: `${path}: unexpected answer: ${text.trim().slice(0, 200)}` })
        )
      )
    )
  )

/** Control sockets under `dir` and one level of subdirectories (the unit's RuntimeDirectory=kiwitun/%i). */
export const listControlSockets = (dir: string): Either.Either<Array<string>, string> => {
  const out: Array<string> = []
  try {
    for (const entry of Fs.readdirSync(dir, { withFileTypes: true })) {
      const path = Path.join(dir, entry.name)
      if (entry.isSocket() && entry.name.endsWith(".sock")) out.push(path)
      else if (entry.isDirectory()) {
        try {
          for (const inner of Fs.readdirSync(path, { withFileTypes: true })) {
            if (inner.isSocket() && inner.name.endsWith(".sock")) out.push(Path.join(path, inner.name))
          }
        } catch {
          // another instance's directory, not readable by this user
        }
      }
    }
  } catch (cause) {
    return Either.left(errnoText(cause))
  }
  return Either.right(out.sort())
}

/**
 * The socket `kiwitun status` asks when none is given: the interface's default one, or else the only socket under
 * CONTROL_DIR.
 */
export const findControlSocket = (ifname: string | undefined): Effect.Effect<string, ControlError> => {
  if (ifname !== undefined) return Effect.succeed(defaultControlSocket(ifname))
  return Effect.sync(() => listControlSockets(CONTROL_DIR)).pipe(
    Effect.flatMap((found) => {
      const fail = (message: string) => Effect.fail(new ControlError({ reason: "connect", message }))
      if (Either.isLeft(found)) return fail(`cannot list ${CONTROL_DIR}: ${found.left}; give --socket PATH`)
      if (found.right.length === 1) return Effect.succeed(found.right[0]!)
      if (found.right.length === 0) {
        return fail(`no control socket under ${CONTROL_DIR}: is kiwitun running? give --socket PATH`)
      }
      return fail(`several control sockets (${found.right.join(", ")}): choose one with -i NAME or --socket PATH`)
    })
  )
}
