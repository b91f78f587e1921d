/**
 * The daemon's logger: one line per entry on stderr, filtered by a syslog level (0 = nothing .. 7 = debug).
 */
import { HashMap, Layer, List, Logger, LogLevel } from "effect"

/** syslog level (0..7, as `--log-level`) -> the least severe Effect level that is still shown. */
export const fromSyslogLevel = (level: number): LogLevel.LogLevel =>
  level <= 0
    ? LogLevel.None
    : level <= 3
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

/** `message key=value ...` (annotations and spans appended), without time or level. */
export const formatLine = (options: Logger.Logger.Options<unknown>): string => {
  const messages = Array.isArray(options.message) ? options.message : [options.message]
  let line = messages.map(render).join(" ")
  for (const [k, v] of HashMap.toEntries(options.annotations)) line += ` ${k}=${quote(render(v))}`
  for (const span of List.toArray(options.spans)) line += ` ${span.label}=${options.date.getTime() - span.startTime}ms`
  if (options.cause._tag !== "Empty") line += ` cause=${quote(render(String(options.cause)))}`
  return line
}

/** stderr, `kiwitun[pid]: level: message k=v`; `journal` prefixes the syslog priority as `<N>` for journald. */
export const stderrLogger = (journal: boolean): Logger.Logger<unknown, void> =>
  Logger.make((options) => {
    const prefix = journal ? `<${toSyslogPriority(options.logLevel)}>` : `${options.date.toISOString()} `
    process.stderr.write(
      `${prefix}kiwitun[${process.pid}]: ${options.logLevel.label.toLowerCase()}: ${formatLine(options)}\n`
    )
  })

export const layer = (syslogLevel: number, journal = false): Layer.Layer<never> =>
  Layer.merge(
    Logger.replace(Logger.defaultLogger, stderrLogger(journal)),
    Logger.minimumLogLevel(fromSyslogLevel(syslogLevel))
  )
