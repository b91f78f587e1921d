/**
 * What a benchmark reads about a running daemon from /proc: CPU time (utime + stime of every thread, from
 * /proc/PID/stat) and memory (VmRSS, VmHWM from /proc/PID/status). Only the benchmark reads /proc; the daemon never.
 */
import { readFile } from "node:fs/promises"
import { Clock, Data, Effect } from "effect"
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
