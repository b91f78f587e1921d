import { describe, expect, it } from "@effect/vitest"
import { decodeReport, encodeReport, isDetachedCopy } from "../src/Daemon.js"

describe("start report", () => {
  it("round-trips ready and failure reports as one line each", () => {
    const ready = encodeReport({ _tag: "Ready", pid: 4242 })
    expect(ready).toBe("ready 4242\n")
    expect(decodeReport(ready.trimEnd())).toEqual({ _tag: "Ready", pid: 4242 })
    const message = "TUNSETIFF ktun0: EBUSY (Device or resource busy)"
    const failed = encodeReport({ _tag: "Failed", code: 1, message })
    expect(failed).toBe("error 1 TUNSETIFF ktun0: EBUSY (Device or resource busy)\n")
    expect(decodeReport(failed.trimEnd())).toEqual({
      _tag: "Failed",
      code: 1,
      message: "TUNSETIFF ktun0: EBUSY (Device or resource busy)"
    })
  })
  it("keeps a multi-line message on its line", () => {
    const line = encodeReport({ _tag: "Failed", code: 2, message: "first\nsecond" })
    expect(line.split("\n")).toEqual(["error 2 first second", ""])
  })
  it("ignores anything else", () => {
    expect(decodeReport("")).toBeUndefined()
    expect(decodeReport("ready")).toBeUndefined()
    expect(decodeReport("ready x")).toBeUndefined()
    expect(decodeReport("error x message")).toBeUndefined()
  })
})

describe("isDetachedCopy", () => {
  it("is true only with a non-empty KIWITUN_DAEMON_FD", () => {
    expect(isDetachedCopy({ KIWITUN_DAEMON_FD: "3" })).toBe(true)
    expect(isDetachedCopy({ KIWITUN_DAEMON_FD: "" })).toBe(false)
    expect(isDetachedCopy({})).toBe(false)
  })
})
