import { chmod, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { it } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import { afterEach, beforeEach, describe, expect } from "vitest"
import * as Reference from "../../bench/lib/Reference.js"

describe("C reference build", () => {
  it("rebuilds when the binary is missing or older than the source, not when it is as new or newer", () => {
    expect(Reference.needsBuild(undefined, 1000)).toBe(true)
    expect(Reference.needsBuild(999, 1000)).toBe(true)
    expect(Reference.needsBuild(1000, 1000)).toBe(false)
    expect(Reference.needsBuild(1001, 1000)).toBe(false)
  })

  it("compiles with warnings on, optimised, with pthreads", () => {
    expect(Reference.compileCommand("cc", "bench/reference/ctun.c", "dist/reference/ctun")).toEqual(
      ["cc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", "dist/reference/ctun", "bench/reference/ctun.c"]
    )
    expect(Reference.sourcePath.endsWith(Path.join("bench", "reference", "ctun.c"))).toBe(true)
    expect(Reference.binaryPath.endsWith(Path.join("dist", "reference", "ctun"))).toBe(true)
  })

  it("builds ctun's command line like the C original's", () => {
    expect(Reference.ctunArgs({ remote: "192.0.2.2", ifname: "ktun0" })).toEqual(
      ["-4", "-6", "-d", "-r", "192.0.2.2", "-i", "ktun0"]
    )
    expect(Reference.ctunArgs({ remote: "192.0.2.2", sit: false, local: "192.0.2.1", ttl: 32 })).toEqual(
      ["-4", "-d", "-r", "192.0.2.2", "-l", "192.0.2.1", "-t", "32"]
    )
    expect(Reference.ctunArgs({ remote: "192.0.2.1", ipip: false })).toEqual(["-6", "-d", "-r", "192.0.2.1"])
    expect(Reference.UP_LINE.exec("ctun: up tun3")?.[1]).toBe("tun3")
    expect(Reference.UP_LINE.test("ctun: cannot open")).toBe(false)
  })

  describe("ensureBuilt, with a stand-in compiler", () => {
    const dir = { path: "" }
    const paths = () => ({
      source: Path.join(dir.path, "ctun.c"),
      binary: Path.join(dir.path, "out", "ctun"),
      log: Path.join(dir.path, "calls.log"),
      compiler: Path.join(dir.path, "fakecc")
    })
    // Logs its arguments and writes the file named after -o, like a compiler that always succeeds.
    const fakeCompiler = `#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls.log"
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then echo built > "$2"; fi
  shift
done
`
    const calls = () =>
      Effect.promise(() =>
        readFile(paths().log, "utf8").then((t) => t.trim().split("\n").filter((l) => l.length > 0), () => [])
      )

    beforeEach(async () => {
      dir.path = await mkdtemp(Path.join(Os.tmpdir(), "kwt-reference-"))
      await writeFile(paths().source, "int main(void) { return 0; }\n")
      await writeFile(paths().compiler, fakeCompiler)
      await chmod(paths().compiler, 0o755)
    })
    afterEach(async () => {
      await rm(dir.path, { recursive: true, force: true })
    })

    it.live("compiles once, then only when the source is newer than the binary", () =>
      Effect.gen(function*() {
        const p = paths()
        const options = { source: p.source, binary: p.binary, compiler: p.compiler }
        expect(yield* Reference.ensureBuilt(options)).toEqual({ binary: p.binary, built: true })
        const first = yield* calls()
        expect(first).toHaveLength(1)
        expect(first[0]).toMatch(/^-O2 -Wall -Wextra -pthread -o \S+ \S+ctun\.c$/)
        expect(yield* Effect.promise(() => readFile(p.binary, "utf8"))).toBe("built\n")

        expect(yield* Reference.ensureBuilt(options)).toEqual({ binary: p.binary, built: false })
        expect(yield* calls()).toHaveLength(1)

        const binaryTime = (yield* Effect.promise(() => stat(p.binary))).mtime
        const later = new Date(binaryTime.getTime() + 5000)
        yield* Effect.promise(() => utimes(p.source, later, later))
        expect(yield* Reference.ensureBuilt(options)).toEqual({ binary: p.binary, built: true })
        expect(yield* calls()).toHaveLength(2)
      }))

    it.live("finds the compiler by name on the given PATH", () =>
      Effect.gen(function*() {
        const p = paths()
        const found = yield* Reference.findExecutable("fakecc", `/nonexistent:${dir.path}`)
        expect(found).toEqual(Option.some(p.compiler))
        expect(yield* Reference.findExecutable("ctun.c", dir.path)).toEqual(Option.none()) // not executable
        const built = yield* Reference.ensureBuilt({
          source: p.source,
          binary: p.binary,
          compiler: "fakecc",
          path: dir.path
        })
        expect(built.built).toBe(true)
      }))

    it.live("fails naming the compiler when it is not installed, and builds nothing", () =>
      Effect.gen(function*() {
        const p = paths()
        const result = yield* Effect.either(
          Reference.ensureBuilt({ source: p.source, binary: p.binary, compiler: "cc", path: dir.path })
        )
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left.reason).toBe("no-compiler")
          expect(result.left.message).toContain(`"cc" was not found`)
        }
        expect(yield* Effect.promise(() => stat(p.binary).then(() => true, () => false))).toBe(false)
      }))

    it.live("reports the compiler's errors and leaves no binary behind", () =>
      Effect.gen(function*() {
        const p = paths()
        yield* Effect.promise(() =>
          writeFile(p.compiler, `#!/bin/sh\nfor a; do [ "$prev" = -o ] && echo half > "$a"; prev=$a; done\n` +
            `echo "ctun.c:1: error: expected ';'" >&2\nexit 1\n`)
        )
        const result = yield* Effect.either(
          Reference.ensureBuilt({ source: p.source, binary: p.binary, compiler: p.compiler })
        )
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left.reason).toBe("compile")
          expect(result.left.message).toContain("error: expected ';'")
        }
        expect(yield* Effect.promise(() => readdir(Path.dirname(p.binary)))).toEqual([])
      }))

    it.live("fails when the source is missing", () =>
      Effect.gen(function*() {
        const p = paths()
        const result = yield* Effect.either(
          Reference.ensureBuilt({ source: `${p.source}.missing`, binary: p.binary, compiler: p.compiler })
        )
        expect(Either.isLeft(result) && result.left.reason).toBe("no-source")
        expect(yield* calls()).toEqual([])
      }))
  })
})
