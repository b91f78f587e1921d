import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, TestClock } from "effect"
import { formatIpv4 } from "../src/domain/Address.js"
import { decode } from "../src/domain/Config.js"
import * as ResolverTest from "../src/layers/ResolverTest.js"
import * as Peer from "../src/Peer.js"

const cfg = (remote: string, refresh = 5) => {
  const c = decode({ v4: true, remote, refresh })
  if (Either.isLeft(c)) throw new Error(c.left.message)
  return c.right
}

const settle = Effect.gen(function*() {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
})

describe("Peer", () => {
  it.scoped("a literal address needs no resolver", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make()
      const peer = yield* Peer.make(cfg("192.0.2.2")).pipe(Effect.provide(ResolverTest.layer(dns)))
      expect(formatIpv4(peer.latest())).toBe("192.0.2.2")
      expect(yield* dns.lookups).toBe(0)
    }))

  it.scoped("resolves at start, then every refresh period, following a changed answer", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make({ "peer.example": "192.0.2.7" })
      const peer = yield* Peer.make(cfg("peer.example", 5)).pipe(Effect.provide(ResolverTest.layer(dns)))
      yield* settle
      expect(formatIpv4(peer.latest())).toBe("192.0.2.7")
      expect(yield* dns.lookups).toBe(1)

      yield* dns.set("peer.example", "192.0.2.8")
      yield* TestClock.adjust("4 minutes")
      yield* settle
      expect(formatIpv4(peer.latest())).toBe("192.0.2.7") // not yet
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(formatIpv4(peer.latest())).toBe("192.0.2.8")
      expect(yield* dns.lookups).toBe(2)
      yield* TestClock.adjust("10 minutes")
      yield* settle
      expect(yield* dns.lookups).toBe(4)
    }))

  it.scoped("a failed refresh keeps the last good address", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make({ "peer.example": "192.0.2.7" })
      const peer = yield* Peer.make(cfg("peer.example", 1)).pipe(Effect.provide(ResolverTest.layer(dns)))
      yield* settle
      yield* dns.set("peer.example", "notFound")
      yield* TestClock.adjust("1 minute")
      yield* settle
      yield* dns.set("peer.example", "failure")
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(yield* dns.lookups).toBe(3)
      expect(formatIpv4(peer.latest())).toBe("192.0.2.7")
    }))

  it.scoped("at start, retries with backoff until the first answer; unknown meanwhile", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make({ "peer.example": "failure" })
      const peer = yield* Peer.make(cfg("peer.example", 60)).pipe(Effect.provide(ResolverTest.layer(dns)))
      yield* settle
      expect(peer.latest()).toBe(0)
      expect(yield* dns.lookups).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* dns.lookups).toBe(2)
      yield* TestClock.adjust("1 second") // backoff doubled: 2 s, not yet
      yield* settle
      expect(yield* dns.lookups).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* dns.lookups).toBe(3)
      yield* dns.set("peer.example", "192.0.2.9")
      yield* TestClock.adjust("4 seconds")
      yield* settle
      expect(formatIpv4(peer.latest())).toBe("192.0.2.9")
      expect(yield* dns.lookups).toBe(4)
    }))

  it.scoped("refresh (SIGHUP) re-resolves at once", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make({ "peer.example": "192.0.2.7" })
      const peer = yield* Peer.make(cfg("peer.example", 60)).pipe(Effect.provide(ResolverTest.layer(dns)))
      yield* settle
      yield* dns.set("peer.example", "192.0.2.10")
      yield* peer.refresh
      expect(formatIpv4(peer.latest())).toBe("192.0.2.10")
      expect(yield* dns.lookups).toBe(2)
    }))

  it.scoped("an answer no packet could go to (0.0.0.0, multicast, reserved, broadcast) counts as a failed lookup", () =>
    Effect.gen(function*() {
      const dns = yield* ResolverTest.make({ "peer.example": "224.0.0.1" })
      const peer = yield* Peer.make(cfg("peer.example", 1)).pipe(Effect.provide(ResolverTest.layer(dns)))
      yield* settle
      expect(peer.latest()).toBe(0) // at start: unknown, and retried
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(yield* dns.lookups).toBe(2)
      yield* dns.set("peer.example", "192.0.2.7")
      yield* TestClock.adjust("2 seconds")
      yield* settle
      expect(formatIpv4(peer.latest())).toBe("192.0.2.7")
      // later: each of them keeps the last good address
      for (const bad of ["0.0.0.0", "239.255.255.250", "240.0.0.1", "255.255.255.255"]) {
        yield* dns.set("peer.example", bad)
        yield* peer.refresh
        expect(formatIpv4(peer.latest())).toBe("192.0.2.7")
      }
      yield* dns.set("peer.example", "198.51.100.9")
      yield* peer.refresh
      expect(formatIpv4(peer.latest())).toBe("198.51.100.9")
    }))
})
