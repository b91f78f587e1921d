/**
 * The command line's own help, from the built entry point (no root needed: --help starts nothing).
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import * as Path from "node:path"
import { repo } from "./support/live.js"

const main = Path.join(repo, "dist", "src", "main.js")

const plain = (text: string): string => text.replace(/\u001b\[[0-9;]*m/g, "")

let helpText: string | undefined
/** The help text, run once for all the tests of this file. */
const help = (): string =>
  helpText ??= plain(execFileSync(process.execPath, [main, "--help"], { encoding: "utf8" }))

describe("kiwitun --help", () => {
  it("shows every switch of the usage line as optional, as the daemon treats them", () => {
    const usage = help().split("\n").find((line) => line.startsWith("$ kiwitun "))
    expect(usage).toBeDefined()
    // [(-4, --4in4)], [--address cidr...]: brackets do not nest in the usage line
    const outside = usage!.slice("$ kiwitun ".length).replace(/\[[^\]]*\]/g, "").trim()
    expect(outside).toBe("")
    for (const option of ["--4in4", "--6in4", "--remote", "--address", "--mtu", "--no-offload", "--control-socket"]) {
      expect(usage).toContain(option)
    }
  }, 30_000)

  it("describes --address as repeatable", () => {
    const text = help()
    // its own entry under OPTIONS, a line of its own
    const at = text.indexOf("\n--address cidr...\n")
    expect(at).toBeGreaterThan(-1)
    const entry = text.slice(at + 1, text.indexOf("\n--", at + 2))
    expect(entry).toContain("(repeatable)")
    expect(entry).toContain("may be repeated zero or more times")
  }, 30_000)
})
