/**
 * The daemon's loggers, swapped in as Layers: one line per entry on stderr (foreground, `-d`), with the `<N>`
 * priority prefix when the stream is the journal's, or syslog(3) (daemonized: facility daemon, tag `kiwitun`, the
 * pid in every line). Either is filtered by a syslog level (0 = nothing .. 7 = debug).
 */
import { Effect, HashMap, Layer, List, Logger, LogLevel } from "effect"
import * as Ffi from "./layers/Ffi.js"

/**
 * syslog level (0..7, as `--log-level`) -> the least severe Effect level that is still shown. Effect has no
 * notice level (5): everything the daemon says at info counts as notice too, so 5 and 6 show the same.
 */
export const fromSyslogLevel = (level: number): LogLevel.LogLevel =>
  level <= 0
    ? LogLevel.None
    : level <= 2
    ? LogLevel.Fatal
    : level === 3
    ? LogLevel.Error
    : level === 4
    ? LogLevel.Warning
    : level <= 6
    ? LogLevel.Info
    : LogLevel.Debug

/** Effect level -> syslog priority (for the `<N>` prefix journald reads, and for syslog(3)). */
export const toSyslogPriority = (level: LogLevel.LogLevel): number => {
  switch (level._tag) {
    case "Fatal":
      return 2
    case "Error":
      return 3
    case "Warning":
      return 4
    case "Info":
      return 6
    default:
      return 7
  }
}

const quote = (v: string) => (/[\s="]/.test(v) || v === "" ? JSON.stringify(v) : v)

const render = (value: unknown): string => {
  if (typeof value === "string") return value
  if (typeof value === "number" || typeof value === "boolean" || typeof value === "bigint") return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** `message key=value ...` (annotations and spans appended), without time or level; always one line. */
export const formatLine = (options: Logger.Logger.Options<unknown>): string => {
  const messages = Array.isArray(options.message) ? options.message : [options.message]
  let line = messages.map(render).join(" ")
  for (const [k, v] of HashMap.toEntries(options.annotations)) line += ` ${k}=${quote(render(v))}`
  for (const span of List.toArray(options.spans)) line += ` ${span.label}=${options.date.getTime() - span.startTime}ms`
  if (options.cause._tag !== "Empty") line += ` cause=${quote(render(String(options.cause)))}`
  // a record per line, whatever a message or a cause contains (syslog and the journal split on newlines)
  return line.replace(/\r?\n/g, " | ")
}

/**
 * Whether stderr is the journal's stream. The service manager sets JOURNAL_STREAM to the `device:inode` of the
 * stream it connected; an inherited variable with stderr redirected elsewhere no longer matches (systemd.exec(5)).
 * A service with NOTIFY_SOCKET and no JOURNAL_STREAM is taken to log to the journal too.
 */
export const stderrIsJournal = (
  env: Readonly<Record<string, string | undefined>>,
  stderr: { readonly dev: bigint; readonly ino: bigint } | undefined
): boolean => {
  const stream = env["JOURNAL_STREAM"]
  if (stream !== undefined && stream !== "") {
    const m = /^(\d+):(\d+)$/.exec(stream)
    return m !== null && stderr !== undefined && BigInt(m[1]!) === stderr.dev && BigInt(m[2]!) === stderr.ino
  }
  return env["NOTIFY_SOCKET"] !== undefined && env["NOTIFY_SOCKET"] !== ""
}

/** One stderr line: `<N>message` for the journal (it records time, tag and pid itself), else the full form. */
export const stderrLine = (journal: boolean, options: Logger.Logger.Options<unknown>, pid: number): string =>
  journal
    ? `<${toSyslogPriority(options.logLevel)}>${formatLine(options)}\n`
    : `${options.date.toISOString()} kiwitun[${pid}]: ${options.logLevel.label.toLowerCase()}: ${formatLine(options)}\n`

/** stderr, `time kiwitun[pid]: level: message k=v`; `journal` writes `<N>message k=v` instead. */
export const stderrLogger = (journal: boolean): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    process.stderr.write(stderrLine(journal, options, process.pid))
  })

/** A logger handing each entry to `write(priority, line)` (syslog(3), or a test's capture). */
export const syslogLogger = (write: (priority: number, line: string) => void): Logger.Logger<unknown, void> =>
  Logger.make((options) => write(toSyslogPriority(options.logLevel), formatLine(options)))

/** `logger` in place of the default one, showing what `syslogLevel` lets through. */
export const layerWith = (logger: Logger.Logger<unknown, void>, syslogLevel: number): Layer.Layer<never> =>
  Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(fromSyslogLevel(syslogLevel)))

/** The foreground logger (stderr), filtered by `syslogLevel`. */
export const layer = (syslogLevel: number, journal = false): Layer.Layer<never> =>
  layerWith(stderrLogger(journal), syslogLevel)

/**
 * The daemon's logger: syslog(3) with facility daemon, tag `kiwitun` and the pid (LOG_PID). LOG_NDELAY connects to
 * /dev/log at once rather than at the first message. The connection is closed when the layer is released.
 */
export const syslogLayer = (syslogLevel: number): Layer.Layer<never> =>
  Layer.unwrapScoped(
    Effect.acquireRelease(
      Effect.sync(() => Ffi.openSyslog("kiwitun", Ffi.LOG_PID | Ffi.LOG_NDELAY, Ffi.LOG_DAEMON)),
      (handle) => Effect.sync(() => handle.close())
    ).pipe(Effect.map((handle) => layerWith(syslogLogger(handle.log), syslogLevel)))
  )
