/**
 * The harness itself: its resources really exist while the scope is open and are really gone afterwards,
 * including after a failure or an interruption, and the helpers measure what they claim to.
 */
import { it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option, Scope } from "effect"
import { expect } from "vitest"
import * as Netns from "../../scripts/lib/Netns.js"
import { describeIntegration } from "./support.js"

const namespaceExists = (name: string) => Effect.map(Netns.listNamespaces, (names) => names.includes(name))

const pidAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describeIntegration("Netns harness", () => {
  it.live("removes namespaces and processes when the scope closes, also on failure", () =>
    Effect.gen(function*() {
      const seen: { ns?: string; pid?: number } = {}
      const exit = yield* Effect.exit(Effect.scoped(Effect.gen(function*() {
        const ns = yield* Netns.namespace
        seen.ns = ns.name
        expect(ns.name.startsWith(`kwt-${process.pid}-`)).toBe(true)
        expect(yield* namespaceExists(ns.name)).toBe(true)
        const sleeper = yield* Netns.spawn(ns, ["sleep", "60"])
        seen.pid = sleeper.pid
        expect(pidAlive(sleeper.pid)).toBe(true)
        return yield* Effect.fail("boom")
      })))
      expect(Exit.isFailure(exit)).toBe(true)
      expect(seen.ns).toBeDefined()
      expect(yield* namespaceExists(seen.ns ?? "")).toBe(false)
      expect(pidAlive(seen.pid ?? -1)).toBe(false)
    }), 30_000)

  it.live("cleans up when the fiber is interrupted", () =>
    Effect.gen(function*() {
      const started = yield* Effect.makeLatch(false)
      const seen: { ns?: string; pid?: number } = {}
      const fiber = yield* Effect.fork(Effect.scoped(Effect.gen(function*() {
        const ns = yield* Netns.namespace
        seen.ns = ns.name
        seen.pid = (yield* Netns.spawn(ns, ["sleep", "60"])).pid
        yield* started.open
        return yield* Effect.never
      })))
      yield* started.await
      yield* Fiber.interrupt(fiber)
      expect(yield* namespaceExists(seen.ns ?? "")).toBe(false)
      expect(pidAlive(seen.pid ?? -1)).toBe(false)
    }), 30_000)

  it.live("kills a process that ignores SIGTERM after the grace period", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const ns = yield* Scope.extend(Netns.namespace, scope)
      const stubborn = yield* Scope.extend(
        Netns.spawn(ns, ["sh", "-c", "trap '' TERM; echo ready; while :; do sleep 0.1; done"], { grace: "300 millis" }),
        scope
      )
      yield* stubborn.waitForLine(/^ready$/)
      yield* Scope.close(scope, Exit.void)
      const exit = yield* stubborn.exited
      expect(Option.map(exit, (e) => e.signal)).toEqual(Option.some("SIGKILL"))
    }), 30_000)

  it.live("runs commands inside the namespace with a timeout", () =>
    Effect.scoped(Effect.gen(function*() {
      const ns = yield* Netns.namespace
      const links = yield* Netns.links(ns)
      expect(links.map((l) => l.ifname)).toEqual(["lo"])
      const result = yield* Netns.exec(ns, ["sh", "-c", "echo out; echo err >&2; exit 3"])
      expect(result).toMatchObject({ code: 3, stdout: "out\n", stderr: "err\n" })
      const slow = yield* Effect.either(Netns.exec(ns, ["sleep", "30"], { timeout: "300 millis" }))
      expect(slow._tag === "Left" && slow.left.reason).toBe("timeout")
    })), 30_000)

  it.live("joins two namespaces with a veth pair that carries ping and TCP", () =>
    Effect.scoped(Effect.gen(function*() {
      const a = yield* Netns.namespace
      const b = yield* Netns.namespace
      yield* Netns.veth({ a, b, addressA: "192.0.2.1/24", addressB: "192.0.2.2/24", mtu: 1400 })
      const link = yield* Netns.waitLinkUp(a, "veth0")
      expect(link.mtu).toBe(1400)
      const ping = yield* Netns.ping(a, "192.0.2.2", { count: 2 })
      expect(ping.received).toBe(2)
      expect(ping.rtts).toHaveLength(2)
      const transfer = yield* Netns.tcpTransfer({ from: b, to: a, host: "192.0.2.1", bytes: 3_000_000 })
      expect(transfer.received).toEqual(transfer.sent)
      expect(transfer.sent.bytes).toBe(3_000_000)
    })), 60_000)
})
