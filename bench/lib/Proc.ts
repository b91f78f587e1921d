/**
 * What a benchmark reads about a running daemon from /proc: CPU time (utime + stime of every thread, from
 * /proc/PID/stat, sampled at clock ticks), run time (the scheduler's exact accounting of every thread, from
 * /proc/PID/task/TID/schedstat) and memory (VmRSS, VmHWM from /proc/PID/status). Only the benchmark reads /proc; the
 * daemon never.
 */
import { readdir, readFile } from "node:fs/promises"
import { Clock, Data, Effect, Option } from "effect"
import * as Netns from "../../scripts/lib/Netns.js"

export class ProcError extends Data.TaggedError("ProcError")<{
  readonly pid: number
  readonly reason: "read" | "parse"
  readonly message: string
}> {}

/**
 * utime + stime in clock ticks from the text of /proc/PID/stat. The command name (field 2) is in parentheses and
 * may hold spaces or parentheses itself, so the fields are counted from the last ')': utime and stime are fields
 * 14 and 15 of proc(5), the 12th and 13th after it.
 */
export const parseStatTicks = (text: string): number | undefined => {
  const close = text.lastIndexOf(")")
  if (close < 0) return undefined
  const fields = text.slice(close + 1).trim().split(/\s+/)
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return Number.isInteger(utime) && Number.isInteger(stime) ? utime + stime : undefined
}

/** The first field of /proc/PID/task/TID/schedstat: the thread's time on a CPU so far, in nanoseconds. */
export const parseSchedstatNanos = (text: string): number | undefined => {
  const field = text.trim().split(/\s+/)[0]
  if (field === undefined || !/^\d+$/.test(field)) return undefined
  const nanos = Number(field)
  return Number.isSafeInteger(nanos) ? nanos : undefined
}

/** A "Key:   1234 kB" line of /proc/PID/status, in kB. */
export const parseStatusKb = (text: string, key: string): number | undefined => {
  const match = new RegExp(`^${key}:\\s+(\\d+)\\s+kB$`, "m").exec(text)
  return match === null ? undefined : Number(match[1])
}

const read = (pid: number, file: string) =>
  Effect.tryPromise({
    try: () => readFile(`/proc/${pid}/${file}`, "utf8"),
    catch: (cause) =>
      new ProcError({
        pid,
        reason: "read",
        message: `cannot read /proc/${pid}/${file}: ${cause instanceof Error ? cause.message : String(cause)}`
      })
  })

/** CPU time used so far by the process (all threads), in clock ticks. */
export const cpuTicks = (pid: number): Effect.Effect<number, ProcError> =>
  Effect.flatMap(read(pid, "stat"), (text) => {
    const ticks = parseStatTicks(text)
    return ticks === undefined
      ? Effect.fail(new ProcError({ pid, reason: "parse", message: `unexpected /proc/${pid}/stat: ${text}` }))
      : Effect.succeed(ticks)
  })

/**
 * Time on a CPU so far of the threads the process has now, in nanoseconds: exact where the tick-sampled CPU time
 * is not (a daemon woken 100 times a second for a fraction of a millisecond each time is mostly missed or mostly
 * over-counted by ticks). A thread that exits takes its time with it; the daemons' threads live as long as they do.
 */
export const runNanos = (pid: number): Effect.Effect<number, ProcError> =>
  Effect.gen(function*() {
    const tids = yield* Effect.tryPromise({
      try: () => readdir(`/proc/${pid}/task`),
      catch: (cause) =>
        new ProcError({
          pid,
          reason: "read",
          message: `cannot list /proc/${pid}/task: ${cause instanceof Error ? cause.message : String(cause)}`
        })
    })
    let total = 0
    for (const tid of tids) {
      // a thread may exit between the listing and the read: it no longer counts
      const text = yield* Effect.option(read(pid, `task/${tid}/schedstat`))
      if (Option.isNone(text)) continue
      const nanos = parseSchedstatNanos(text.value)
      if (nanos === undefined) {
        return yield* new ProcError({ pid, reason: "parse", message: `unexpected schedstat of thread ${tid}` })
      }
      total += nanos
    }
    return total
  })

export interface Memory {
  /** Resident set size now, kB. */
  readonly rssKb: number
  /** Peak resident set size since the start, kB. */
  readonly hwmKb: number
}

export const memory = (pid: number): Effect.Effect<Memory, ProcError> =>
  Effect.flatMap(read(pid, "status"), (text) => {
    const rssKb = parseStatusKb(text, "VmRSS")
    const hwmKb = parseStatusKb(text, "VmHWM")
    return rssKb === undefined || hwmKb === undefined
      ? Effect.fail(new ProcError({ pid, reason: "parse", message: `no VmRSS/VmHWM in /proc/${pid}/status` }))
      : Effect.succeed({ rssKb, hwmKb })
  })

/** USER_HZ, the unit of the /proc CPU times (100 on every common Linux; asked of getconf to be sure). */
export const clockTicksPerSecond: Effect.Effect<number> = Netns.runOk(["getconf", "CLK_TCK"], { timeout: "5 seconds" })
  .pipe(
    Effect.map((r) => Number(r.stdout.trim())),
    Effect.map((hz) => (Number.isInteger(hz) && hz > 0 ? hz : 100)),
    Effect.orElseSucceed(() => 100)
  )

/** CPU use as a percentage of one core. */
export const cpuPercent = (ticks: number, hz: number, wallMs: number): number =>
  wallMs <= 0 ? Number.NaN : (ticks / hz / (wallMs / 1000)) * 100

/**
 * Runs `effect` and reports the CPU use (% of one core) of each pid over exactly that time, measured from the
 * processes' own accounting, so other load on the machine does not count (it only slows them down).
 */
export const withCpu = <A, E, R>(pids: ReadonlyArray<number>, hz: number, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* Effect.forEach(pids, cpuTicks)
    const began = yield* Clock.currentTimeMillis
    const result = yield* effect
    const wallMs = (yield* Clock.currentTimeMillis) - began
    const after = yield* Effect.forEach(pids, cpuTicks)
    const cpu = pids.map((_, i) => cpuPercent(after[i]! - before[i]!, hz, wallMs))
    return { result, cpu, wallMs }
  })

/**
 * Runs `effect` and reports each pid's run time over it in nanoseconds (`runNanos`); NaN for a pid whose run time
 * cannot be read (a kernel without scheduler statistics), so the figure is missing rather than the test failed.
 */
export const withRunTime = <A, E, R>(pids: ReadonlyArray<number>, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const before = yield* Effect.forEach(pids, (pid) => Effect.option(runNanos(pid)))
    const result = yield* effect
    const after = yield* Effect.forEach(pids, (pid) => Effect.option(runNanos(pid)))
    const nanos = pids.map((_, i) => {
      const b = before[i]!
      const a = after[i]!
      return Option.isSome(b) && Option.isSome(a) ? a.value - b.value : Number.NaN
    })
    return { result, nanos }
  })
