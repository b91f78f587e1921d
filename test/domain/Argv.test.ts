import { describe, expect, it } from "@effect/vitest"
import { expandShortOptions } from "../../src/domain/Argv.js"

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
