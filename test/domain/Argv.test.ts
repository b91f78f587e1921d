import { describe, expect, it } from "@effect/vitest"
import type { SwitchTable } from "../../src/domain/Argv.js"
import { expandShortOptions, keepLastOccurrence } from "../../src/domain/Argv.js"

describe("expandShortOptions", () => {
  it("splits bundled flags like getopt", () => {
    expect(expandShortOptions(["-46d"])).toEqual(["-4", "-6", "-d"])
    expect(expandShortOptions(["-46r", "192.0.2.2"])).toEqual(["-4", "-6", "-r", "192.0.2.2"])
  })
  it("splits an attached value", () => {
    expect(expandShortOptions(["-r192.0.2.2", "-tinherit", "-iktun0"])).toEqual([
      "-r", "192.0.2.2", "-t", "inherit", "-i", "ktun0"
    ])
  })
  it("leaves long options, values and single flags alone", () => {
    const argv = ["--remote=192.0.2.2", "--log-level", "7", "-4", "--address", "2001:db8::1/64", "-5"]
    expect(expandShortOptions(argv)).toEqual(argv)
  })
  it("keeps an unknown letter for the parser to report", () => {
    expect(expandShortOptions(["-4x"])).toEqual(["-4", "-x"])
  })
  it("stops at --", () => {
    expect(expandShortOptions(["--", "-46"])).toEqual(["--", "-46"])
  })
})

const TABLE: SwitchTable = {
  values: new Set(["remote", "ifname", "mtu", "address"]),
  flags: new Set(["4in4", "no-daemon"]),
  repeatable: new Set(["address"]),
  aliases: new Map([["4", "4in4"], ["r", "remote"], ["i", "ifname"], ["d", "no-daemon"]])
}

describe("keepLastOccurrence", () => {
  it("keeps the last value of a repeated switch, short and long forms alike, as getopt programs do", () => {
    expect(keepLastOccurrence(["-r", "192.0.2.9", "-4", "--remote=192.0.2.8", "-r", "192.0.2.2"], TABLE)).toEqual([
      "-4",
      "-r",
      "192.0.2.2"
    ])
    expect(keepLastOccurrence(["--mtu", "1400", "-i", "ktun0", "--mtu=1300"], TABLE)).toEqual([
      "-i",
      "ktun0",
      "--mtu=1300"
    ])
  })
  it("counts a repeated flag once", () => {
    expect(keepLastOccurrence(["-d", "-4", "--no-daemon", "-4"], TABLE)).toEqual(["--no-daemon", "-4"])
  })
  it("keeps every occurrence of a repeatable switch", () => {
    const argv = ["--address", "198.51.100.1/30", "--address=2001:db8::1/64", "--address", "203.0.113.1/24"]
    expect(keepLastOccurrence(argv, TABLE)).toEqual(argv)
  })
  it("takes the word after a value switch as its value, even when it looks like a switch", () => {
    expect(keepLastOccurrence(["-i", "-r", "-r", "192.0.2.2"], TABLE)).toEqual(["-i", "-r", "-r", "192.0.2.2"])
    expect(keepLastOccurrence(["-i", "-4", "-i", "ktun1", "-4"], TABLE)).toEqual(["-i", "ktun1", "-4"])
  })
  it("leaves unknown switches, plain words, a trailing value switch and everything after -- alone", () => {
    expect(keepLastOccurrence(["--foo", "--foo", "status", "-x", "-x"], TABLE)).toEqual([
      "--foo",
      "--foo",
      "status",
      "-x",
      "-x"
    ])
    expect(keepLastOccurrence(["-r", "192.0.2.2", "-r"], TABLE)).toEqual(["-r"])
    expect(keepLastOccurrence(["-4", "--", "-4", "-4"], TABLE)).toEqual(["-4", "--", "-4", "-4"])
  })
})
