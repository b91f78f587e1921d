/**
 * The README's library example must compile against the package as published (its `exports`), and its two
 * commands must be the ones package.json and .ci/run actually provide.
 */
import { describe, expect, it } from "@effect/vitest"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..")
const readme = readFileSync(Path.join(root, "README.md"), "utf8")

describe("README", () => {
  it("library example typechecks against the built package", () => {
    const section = readme.slice(readme.indexOf("## Use as a library"))
    const match = /```ts\n([\s\S]*?)```/.exec(section)
    expect(match).not.toBeNull()
    const code = match![1]!
    expect(code).toContain('from "kiwitun"')
    const dir = Path.join(root, "dist", "readme-example")
    mkdirSync(dir, { recursive: true })
    const file = Path.join(dir, "example.ts")
    writeFileSync(file, code)
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      exactOptionalPropertyTypes: true,
      noEmit: true,
      skipLibCheck: true,
      types: ["node"]
    })
    const diagnostics = ts.getPreEmitDiagnostics(program).map((d) =>
      ts.flattenDiagnosticMessageText(d.messageText, "\n")
    )
    expect(diagnostics).toEqual([])
  }, 60_000)

  it("its two commands exist: npm run demo and npm test, and .ci/run runs the test command", () => {
    expect(readme).toContain("npm ci && npm run demo")
    expect(readme).toContain("npm ci && npm test")
    const pkg = JSON.parse(readFileSync(Path.join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }
    expect(pkg.scripts.demo).toBeDefined()
    expect(pkg.scripts.test).toBeDefined()
    expect(readFileSync(Path.join(root, ".ci", "run"), "utf8")).toMatch(/^npm test\b/m)
  })
})
