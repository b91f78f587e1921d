/**
 * Shared set-up for the integration suite: prerequisites (skip, or fail under CI=true), building dist/ when it is
 * missing, and a check after every test that no namespace of ours is left behind.
 */
import { execFileSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as Path from "node:path"
import { Effect } from "effect"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { ci } from "../support/ci.js"

const prerequisites = Effect.runSync(Netns.checkPrerequisites)
export { ci }

const built = (): boolean =>
  existsSync(Path.join(Netns.repoRoot, "dist", "src", "main.js")) && existsSync(Netns.tcpPeerScript)

/** `npm test` builds first; a bare `vitest run` may not have. */
const ensureBuilt = (): void => {
  if (built()) return
  try {
    execFileSync("npx", ["tsc", "-p", "tsconfig.json"], { cwd: Netns.repoRoot, stdio: "pipe", timeout: 300_000 })
  } catch (cause) {
    // tsc still emits on type errors; only a missing output is fatal here.
    if (!built()) throw new Error(`build failed: ${String(cause)}`)
  }
  if (!built()) throw new Error("build did not produce dist/src/main.js and dist/scripts/lib/tcpPeer.js")
}

const leftovers = Effect.map(Netns.listNamespaces, (names) => names.filter((n) => n.startsWith(Netns.namespacePrefix)))

/**
 * `describe` for tests that need root, /dev/net/tun, ip and ping. Without them the tests are skipped, except
 * under CI=true, where a missing prerequisite is a failing test.
 */
export const describeIntegration = (name: string, body: () => void): void => {
  if (prerequisites.ok) {
    describe(name, () => {
      beforeAll(ensureBuilt, 300_000)
      afterEach(async () => {
        expect(await Effect.runPromise(leftovers), "namespaces left behind").toEqual([])
      })
      body()
    })
  } else if (ci) {
    describe(name, () => {
      it("has its prerequisites (CI=true: missing ones fail the run)", () => {
        expect.fail(`integration prerequisites missing: ${prerequisites.missing.join("; ")}`)
      })
    })
  } else {
    describe.skip(`${name} (skipped: ${prerequisites.missing.join("; ")})`, body)
  }
}

export const nonEmptyLines = (text: string): ReadonlyArray<string> =>
  text.split("\n").map((l) => l.trimEnd()).filter((l) => l.length > 0)

/**
 * From each host of a tunnel pair to the other, over the inner IPv4 and IPv6 addresses: two pings answered, then
 * `bytes` of TCP received byte for byte (SHA-256 of what was sent against what arrived).
 */
export const pingAndTransferBothWays = (a: Netns.TunnelHost, b: Netns.TunnelHost, bytes: number) =>
  Effect.gen(function*() {
    for (const [from, to] of [[a, b], [b, a]] as const) {
      for (const host of [to.inner4, to.inner6]) {
        const ping = yield* Netns.ping(from.ns, host, { count: 2 })
        expect(ping.received, ping.output).toBe(2)
        const result = yield* Netns.tcpTransfer({ from: from.ns, to: to.ns, host, bytes, timeout: "60 seconds" })
        expect(result.received, `to ${host}`).toEqual(result.sent)
      }
    }
  })
