/**
 * Daemonizing like the C original, with a readiness handshake it lacked: the command starts a detached copy of
 * itself (a new session, stdio on /dev/null) and exits only once that copy reports the tunnel up, or with the
 * copy's own error when it cannot start. The report travels over an inherited pipe whose descriptor the copy finds
 * in KIWITUN_DAEMON_FD. Also the pidfile.
 */
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import type { Readable } from "node:stream"
import type { Scope } from "effect"
import { Context, Data, Effect, Layer } from "effect"

/** Names the descriptor on which the detached copy reports; its presence marks the process as that copy. */
export const DAEMON_FD_ENV = "KIWITUN_DAEMON_FD"
/** The descriptor number the copy gets (stdio 0..2 are /dev/null). */
const REPORT_FD = 3

// ---------------------------------------------------------------------------------------------------------------
// The report: one line

export type StartReport =
  | { readonly _tag: "Ready"; readonly pid: number }
  | { readonly _tag: "Failed"; readonly code: number; readonly message: string }

export const encodeReport = (report: StartReport): string =>
  report._tag === "Ready"
    ? `ready ${report.pid}\n`
    : `error ${report.code} ${report.message.replace(/[\r\n]+/g, " ")}\n`

/** Parses one report line; undefined for anything else. */
export const decodeReport = (line: string): StartReport | undefined => {
  const ready = /^ready (\d+)$/.exec(line)
  if (ready !== null) return { _tag: "Ready", pid: Number(ready[1]) }
  const failed = /^error (\d{1,3}) (.*)$/.exec(line)
  if (failed !== null) return { _tag: "Failed", code: Number(failed[1]), message: failed[2]! }
  return undefined
}

// ---------------------------------------------------------------------------------------------------------------
// The starting side

export class DaemonStartError extends Data.TaggedError("DaemonStartError")<{
  readonly code: number
  readonly message: string
}> {}

export interface DaemonCommand {
  /** The program (this Node binary). */
  readonly file: string
  /** Its arguments: Node's own options, the script, then the command line as the user gave it. */
  readonly args: ReadonlyArray<string>
}

/** This very process's command line, to start a copy of it. */
export const selfCommand = (): DaemonCommand => ({
  file: process.execPath,
  args: [...process.execArgv, ...process.argv.slice(1)]
})

/**
 * Starts the detached copy and waits for its report: succeeds with its pid once it is ready, fails with its exit code
 * and message when it could not start (or with code 1 when it died without a word). The copy is not waited for once
 * it is ready: it belongs to init from the moment this process exits.
 */
export const start = (command: DaemonCommand): Effect.Effect<number, DaemonStartError> =>
  Effect.async<number, DaemonStartError>((resume) => {
    const child = ChildProcess.spawn(command.file, command.args, {
      detached: true, // setsid(2): no controlling terminal, its own session and process group
      stdio: ["ignore", "ignore", "ignore", "pipe"],
      env: { ...process.env, [DAEMON_FD_ENV]: String(REPORT_FD) }
    })
    const pipe = child.stdio[REPORT_FD] as Readable | null
    let text = ""
    let settled = false
    let exitCode: number | null | undefined
    let report: StartReport | undefined
    const settle = (effect: Effect.Effect<number, DaemonStartError>) => {
      if (settled) return
      settled = true
      resume(effect)
    }
    const failure = (): DaemonStartError =>
      report?._tag === "Failed"
        ? new DaemonStartError({ code: report.code === 0 ? 1 : report.code, message: report.message })
        : new DaemonStartError({
          code: 1,
          message: `the daemon exited (${exitCode === null ? "killed by a signal" : `code ${exitCode}`}) before ` +
            `it was ready; run with -d to see why`
        })
    child.once("error", (cause) =>
      settle(Effect.fail(new DaemonStartError({ code: 1, message: `cannot start the daemon: ${cause.message}` }))))
    // A failed copy has removed what it created before it reported; its exit is awaited so that nothing of it is
    // left when this command returns. "close" comes after the exit and after the pipe is drained (the report read).
    child.once("close", (code) => {
      exitCode = code
      settle(Effect.fail(failure()))
    })
    pipe?.on("data", (chunk: Buffer) => {
      text += chunk.toString("utf8")
      const nl = text.indexOf("\n")
      if (nl < 0 || report !== undefined) return
      report = decodeReport(text.slice(0, nl))
      if (report?._tag === "Ready") {
        const pid = report.pid
        pipe.destroy()
        child.unref()
        settle(Effect.succeed(pid))
      }
    })
    pipe?.on("error", () => undefined) // the copy closing its end early is reported through its exit
    // Interrupted while waiting (Ctrl-C on the starting command): the copy, in its own session, did not get the
    // signal; a start the user gave up on must not go on in the background.
    return Effect.sync(() => {
      if (!settled) child.kill("SIGTERM")
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// The detached copy's side

export class Readiness extends Context.Tag("kiwitun/Readiness")<Readiness, {
  /** Tells the starting command the tunnel is up (once; later calls do nothing). */
  readonly ready: Effect.Effect<void>
  /** Tells it the start failed, with the exit code and one line. */
  readonly failed: (code: number, message: string) => Effect.Effect<void>
}>() {}

/** Whether this process is the detached copy (its starter waits for a report). */
export const isDetachedCopy = (env: Readonly<Record<string, string | undefined>>): boolean =>
  env[DAEMON_FD_ENV] !== undefined && env[DAEMON_FD_ENV] !== ""

const reporter = (fd: number): Readiness["Type"] => {
  let open = true
  const send = (report: StartReport) =>
    Effect.sync(() => {
      if (!open) return
      open = false
      try {
        Fs.writeSync(fd, encodeReport(report))
      } catch {
        // EPIPE: the starting command is gone (killed); the daemon runs on regardless
      }
      try {
        Fs.closeSync(fd)
      } catch {
        // already closed
      }
    })
  return {
    ready: send({ _tag: "Ready", pid: process.pid }),
    failed: (code, message) => send({ _tag: "Failed", code, message })
  }
}

/**
 * The report channel named by KIWITUN_DAEMON_FD (removed from the environment, so nothing started later inherits
 * it), or a channel that reports nowhere when the variable is absent (the foreground, `-d`).
 */
export const layerFromEnv: Layer.Layer<Readiness> = Layer.sync(Readiness, () => {
  const value = process.env[DAEMON_FD_ENV]
  delete process.env[DAEMON_FD_ENV]
  const fd = value === undefined ? NaN : Number(value)
  if (!Number.isInteger(fd) || fd < 3) return { ready: Effect.void, failed: () => Effect.void }
  return reporter(fd)
})

// ---------------------------------------------------------------------------------------------------------------
// Pidfile

export class PidfileError extends Data.TaggedError("PidfileError")<{ readonly message: string }> {}

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (cause) {
    // EPERM: it exists, owned by someone else
    return (cause as NodeJS.ErrnoException).code === "EPERM"
  }
}

/**
 * Writes this process's pid to `path` and removes the file when the scope closes (if it still holds our pid). A
 * pidfile naming another running process is refused; a stale one is replaced.
 */
export const pidfile = (path: string): Effect.Effect<void, PidfileError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({
      try: () => {
        let previous: string | undefined
        try {
          previous = Fs.readFileSync(path, "utf8").trim()
        } catch {
          previous = undefined
        }
        const other = previous !== undefined && /^\d+$/.test(previous) ? Number(previous) : undefined
        if (other !== undefined && other !== process.pid && other > 0 && isRunning(other)) {
          return `pidfile ${path} names process ${other}, which is running`
        }
        Fs.writeFileSync(path, `${process.pid}\n`, { mode: 0o644 })
        return undefined
      },
      catch: (cause) => new PidfileError({ message: `cannot write pidfile ${path}: ${(cause as Error).message}` })
    }).pipe(
      Effect.flatMap((problem) =>
        problem === undefined ? Effect.void : Effect.fail(new PidfileError({ message: problem }))
      )
    ),
    () =>
      Effect.sync(() => {
        try {
          if (Fs.readFileSync(path, "utf8").trim() === String(process.pid)) Fs.unlinkSync(path)
          return undefined
        } catch (cause) {
          return (cause as NodeJS.ErrnoException).code === "ENOENT" ? undefined : (cause as Error).message
        }
      }).pipe(
        Effect.flatMap((problem) =>
          problem === undefined
            ? Effect.void
            : Effect.logWarning("cannot remove the pidfile").pipe(Effect.annotateLogs({ path, error: problem }))
        )
      )
  )
