import { describe, expect, it } from "@effect/vitest"
import { Effect, FiberId, HashMap, List, Logger, LogLevel, Cause, FiberRefs } from "effect"
import * as Log from "../src/Log.js"

const options = (level: LogLevel.LogLevel, message: unknown, annotations: Record<string, unknown> = {}) =>
  ({
    fiberId: FiberId.none,
    logLevel: level,
    message,
    cause: Cause.empty,
    context: FiberRefs.empty(),
    spans: List.empty(),
    annotations: HashMap.fromIterable(Object.entries(annotations)),
    date: new Date("2024-05-01T10:00:00.000Z")
  }) satisfies Logger.Logger.Options<unknown>

describe("levels", () => {
  it("maps --log-level to the least severe Effect level shown (0 = nothing, 7 = debug)", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((l) => Log.fromSyslogLevel(l)._tag)).toEqual([
      "None", "Fatal", "Fatal", "Error", "Warning", "Info", "Info", "Debug"
    ])
  })
  it("maps Effect levels to syslog priorities", () => {
    expect([LogLevel.Fatal, LogLevel.Error, LogLevel.Warning, LogLevel.Info, LogLevel.Debug, LogLevel.Trace]
      .map(Log.toSyslogPriority)).toEqual([2, 3, 4, 6, 7, 7])
  })
})

describe("stderrIsJournal", () => {
  const stderr = { dev: 64769n, ino: 123456789012n }
  it("is true when JOURNAL_STREAM names stderr's device and inode", () => {
    expect(Log.stderrIsJournal({ JOURNAL_STREAM: "64769:123456789012" }, stderr)).toBe(true)
  })
  it("is false when stderr was redirected away from the journal's stream", () => {
    expect(Log.stderrIsJournal({ JOURNAL_STREAM: "64769:1" }, stderr)).toBe(false)
    expect(Log.stderrIsJournal({ JOURNAL_STREAM: "64769:123456789012", NOTIFY_SOCKET: "/run/n" }, { dev: 1n, ino: 2n }))
      .toBe(false)
    expect(Log.stderrIsJournal({ JOURNAL_STREAM: "garbage" }, stderr)).toBe(false)
  })
  it("takes a NOTIFY_SOCKET without JOURNAL_STREAM as a service logging to the journal", () => {
    expect(Log.stderrIsJournal({ NOTIFY_SOCKET: "@notify" }, undefined)).toBe(true)
    expect(Log.stderrIsJournal({}, stderr)).toBe(false)
    expect(Log.stderrIsJournal({ NOTIFY_SOCKET: "" }, stderr)).toBe(false)
  })
})

describe("line formats", () => {
  it("prefixes the syslog priority for the journal and leaves time, tag and pid to it", () => {
    expect(Log.stderrLine(true, options(LogLevel.Warning, "send failed", { errno: 101 }), 7)).toBe(
      "<4>send failed errno=101\n"
    )
    expect(Log.stderrLine(true, options(LogLevel.Info, "tunnel up", { tunnel: "ktun0" }), 7)).toBe(
      "<6>tunnel up tunnel=ktun0\n"
    )
  })
  it("writes time, tag, pid and level on a terminal", () => {
    expect(Log.stderrLine(false, options(LogLevel.Error, "boom"), 7)).toBe(
      "2024-05-01T10:00:00.000Z kiwitun[7]: error: boom\n"
    )
  })
  it("keeps a record on one line and quotes values with spaces", () => {
    expect(Log.formatLine(options(LogLevel.Info, "a\nb", { why: "two words", empty: "" }))).toBe(
      "a | b why=\"two words\" empty=\"\""
    )
  })
})

describe("syslog logger", () => {
  const capture = (level: number, program: Effect.Effect<void>) =>
    Effect.gen(function*() {
      const lines: Array<[number, string]> = []
      yield* program.pipe(Effect.provide(Log.layerWith(Log.syslogLogger((p, l) => lines.push([p, l])), level)))
      return lines
    })
  const program = Effect.gen(function*() {
    yield* Effect.logDebug("debug")
    yield* Effect.logInfo("up").pipe(Effect.annotateLogs({ tunnel: "ktun0" }))
    yield* Effect.logWarning("warn")
    yield* Effect.logError("err")
  })
  it.effect("hands each entry with its priority, filtered by the level", () =>
    Effect.gen(function*() {
      expect(yield* capture(6, program)).toEqual([[6, "up tunnel=ktun0"], [4, "warn"], [3, "err"]])
      expect(yield* capture(7, program)).toEqual([[7, "debug"], [6, "up tunnel=ktun0"], [4, "warn"], [3, "err"]])
      expect(yield* capture(4, program)).toEqual([[4, "warn"], [3, "err"]])
      expect(yield* capture(0, program)).toEqual([])
    }))
})
