/**
 * Machinery for tests of the Live layers against the real kernel, shared by test/layers/*Live*.test.ts. The layers
 * run in small Node scripts (test/layers/fixtures) started with `ip netns exec` inside namespaces the tests create
 * and always delete; the scripts import the layers compiled by `tsc` into a private directory under dist/, so the
 * rest of the tree may be mid-change by others.
 *
 * Such tests run as root with /dev/net/tun; elsewhere they are skipped, except with CI=true, where a missing
 * prerequisite fails.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs"
import path from "node:path"
import { fileURLToPath } from "node:url"

export const repo = fileURLToPath(new URL("../..", import.meta.url))
export const fixtures = path.join(repo, "test/layers/fixtures")
export { ci } from "./ci.js"

const works = (cmd: string, args: Array<string>) => {
  const r = spawnSync(cmd, args, { stdio: "ignore", timeout: 10_000 })
  return r.error === undefined && r.status === 0
}

/** What this machine lacks for the live tests (empty: they can run). */
export const missingPrerequisites = (): Array<string> => {
  const missing: Array<string> = []
  if (process.platform !== "linux") missing.push("Linux")
  else {
    if (process.getuid?.() !== 0) missing.push("root")
    if (!existsSync("/dev/net/tun")) missing.push("/dev/net/tun")
    if (!works("ip", ["-V"])) missing.push("ip (iproute2)")
    if (!works("setpriv", ["--version"])) missing.push("setpriv (util-linux)")
  }
  return missing
}

export const run = (cmd: string, args: Array<string>, timeout = 15_000): string => {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout })
  if (r.error !== undefined || r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.error?.message ?? `status ${r.status}`}): ${r.stderr}`)
  }
  return r.stdout
}

export const ip = (...args: Array<string>) => run("ip", args)

/** The last stdout line of a fixture is its JSON report. */
export const lastJson = (stdout: string, stderr: string): unknown => {
  const lines = stdout.trim().split("\n")
  try {
    return JSON.parse(lines[lines.length - 1] ?? "")
  } catch {
    throw new Error(`fixture printed no report.\nstdout: ${stdout}\nstderr: ${stderr}`)
  }
}

/** A private build of some Live layers: `compiled` is the directory the fixtures import from. */
export interface LiveBuild {
  readonly compiled: string
  /** Compiles the layers (and what they import) with tsc; throws when an expected module was not emitted. */
  readonly compile: () => void
  /** Runs `fixtures/<script> <compiled> ...args` with node inside namespace `ns`; returns its JSON report. */
  readonly fixtureIn: (ns: string, script: string, args: Array<string>, timeout?: number) => unknown
  readonly remove: () => void
}

/**
 * `name` keeps builds of concurrently running test files apart; `layers` are module names under src/layers, and
 * `expect` names further modules (relative to src/, without suffix) that must come out of the build.
 */
export const liveBuild = (
  name: string,
  layers: ReadonlyArray<string>,
  expect: ReadonlyArray<string> = []
): LiveBuild => {
  const build = path.join(repo, "dist", `.${name}-${process.pid}`)
  const compiled = path.join(build, "out")
  const compile = () => {
    mkdirSync(build, { recursive: true })
    // Only the Live layers and what they import: the rest of the tree may be mid-change by others.
    const config = {
      extends: path.join(repo, "tsconfig.json"),
      compilerOptions: { outDir: compiled, rootDir: repo, noEmit: false, declaration: false, sourceMap: false },
      include: [],
      files: layers.map((f) => path.join(repo, "src/layers", `${f}.ts`))
    }
    writeFileSync(path.join(build, "tsconfig.json"), JSON.stringify(config))
    const tsc = path.join(repo, "node_modules/typescript/bin/tsc")
    const r = spawnSync(process.execPath, [tsc, "-p", path.join(build, "tsconfig.json")], {
      encoding: "utf8",
      timeout: 180_000
    })
    const wanted = [...layers.map((f) => `layers/${f}`), ...expect].map((f) => path.join(compiled, "src", `${f}.js`))
    // tsc emits despite type errors; the typecheck proper is `tsc -p tsconfig.test.json`
    if (!wanted.every((f) => existsSync(f))) throw new Error(`tsc emitted nothing:\n${r.stdout}\n${r.stderr}`)
  }
  const fixtureIn = (ns: string, script: string, args: Array<string>, timeout = 60_000) => {
    const r = spawnSync("ip", ["netns", "exec", ns, process.execPath, path.join(fixtures, script), compiled, ...args], {
      encoding: "utf8",
      timeout
    })
    if (r.error !== undefined || r.status !== 0) {
      throw new Error(`${script} failed (${r.error?.message ?? `status ${r.status}`}):\n${r.stdout}\n${r.stderr}`)
    }
    return lastJson(r.stdout, r.stderr)
  }
  return { compiled, compile, fixtureIn, remove: () => rmSync(build, { recursive: true, force: true }) }
}
