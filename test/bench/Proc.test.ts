import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as Proc from "../../bench/lib/Proc.js"

describe("/proc parsers", () => {
  it("reads utime + stime past a command name with spaces and parentheses", () => {
    // fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = "4242 (node (x) y) S 1 4242 4242 0 -1 4194560 5000 0 0 0 1234 567 0 0 20 0 11 0 100 0 0"
    expect(Proc.parseStatTicks(stat)).toBe(1234 + 567)
    expect(Proc.parseStatTicks("garbage")).toBeUndefined()
    expect(Proc.parseStatTicks("1 (x) S 1 2")).toBeUndefined()
  })

  it("reads kB lines of /proc/PID/status", () => {
    const status = "Name:\tnode\nVmPeak:\t 1000 kB\nVmHWM:\t  250000 kB\nVmRSS:\t  131072 kB\nThreads:\t11\n"
    expect(Proc.parseStatusKb(status, "VmRSS")).toBe(131072)
    expect(Proc.parseStatusKb(status, "VmHWM")).toBe(250000)
    expect(Proc.parseStatusKb(status, "VmSwap")).toBeUndefined()
  })

  it("reads the run time of a thread from its schedstat line", () => {
    // fields: time on a CPU (ns), time waiting to run (ns), timeslices
    expect(Proc.parseSchedstatNanos("123456789012 3456 789\n")).toBe(123456789012)
    expect(Proc.parseSchedstatNanos("")).toBeUndefined()
    expect(Proc.parseSchedstatNanos("-5 1 2")).toBeUndefined()
    expect(Proc.parseSchedstatNanos("12x 1 2")).toBeUndefined()
    expect(Proc.parseSchedstatNanos("99999999999999999999 1 2")).toBeUndefined()
  })

  it("measures this process's run time over a busy effect, all threads together", async () => {
    const spin = Effect.sync(() => {
      const until = performance.now() + 30
      let x = 0
      while (performance.now() < until) x++
      return x
    })
    const { nanos, result } = await Effect.runPromise(Proc.withRunTime([process.pid, 0x7fffffff], spin))
    expect(result).toBeGreaterThan(0)
    // 30 ms of spinning on this thread: at least that much (other threads may add to it), not seconds
    expect(nanos[0]).toBeGreaterThanOrEqual(25e6)
    expect(nanos[0]).toBeLessThan(5e9)
    // a pid that does not exist gives no figure instead of failing the measurement
    expect(nanos[1]).toBeNaN()
  })

  it("turns ticks into % of a core", () => {
    expect(Proc.cpuPercent(150, 100, 10_000)).toBeCloseTo(15)
    expect(Proc.cpuPercent(0, 100, 0)).toBeNaN()
  })

  it("reads this process's own CPU time and memory", async () => {
    const [ticks, mem] = await Effect.runPromise(Effect.all([Proc.cpuTicks(process.pid), Proc.memory(process.pid)]))
    expect(ticks).toBeGreaterThanOrEqual(0)
    expect(mem.rssKb).toBeGreaterThan(1000)
    expect(mem.hwmKb).toBeGreaterThanOrEqual(mem.rssKb)
  })
})
