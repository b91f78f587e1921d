import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { readFileSync } from "node:fs"
import { formatCidr } from "../../src/domain/Address.js"
import type { RawConfig } from "../../src/domain/Config.js"
import { decode, isHostname, isIfname } from "../../src/domain/Config.js"
import { VERSION } from "../../src/Version.js"

const ok = (raw: RawConfig) => {
  const r = decode(raw)
  if (Either.isLeft(r)) throw new Error(r.left.message)
  return r.right
}
const err = (raw: RawConfig) => {
  const r = decode(raw)
  if (Either.isRight(r)) throw new Error("expected an error")
  return r.left.message
}

describe("Config.decode", () => {
  it("applies the documented defaults", () => {
    const c = ok({ v4: true })
    expect(c).toMatchObject({ v4: true, v6: false, remote: { _tag: "Dynamic" }, local: 0, ttl: 64, mtu: 1480,
      refreshMinutes: 60, logLevel: 6, table: undefined, icmpRatePerSecond: 100, icmpBurst: 100 })
  })
  it("needs a mode", () => {
    expect(err({})).toMatch(/-4.*-6/)
  })
  it("remote: address, host name, or an error", () => {
    expect(ok({ v4: true, remote: "192.0.2.2" }).remote).toEqual({ _tag: "Address", addr: 0xc0000202 })
    expect(ok({ v4: true, remote: "peer.example" }).remote).toEqual({ _tag: "Host", name: "peer.example" })
    expect(err({ v4: true, remote: "not..valid" })).toMatch(/--remote/)
    expect(err({ v4: true, remote: "192.0.2.300" })).toMatch(/--remote/)
    expect(err({ v4: true, remote: "224.0.0.1" })).toMatch(/unicast/)
  })
  it("ttl: 1..255 or inherit", () => {
    expect(ok({ v4: true, ttl: "1" }).ttl).toBe(1)
    expect(ok({ v4: true, ttl: "255" }).ttl).toBe(255)
    expect(ok({ v4: true, ttl: "inherit" }).ttl).toBe(0)
    for (const t of ["0", "256", "300", "-1", "x", ""]) expect(err({ v4: true, ttl: t })).toMatch(/--ttl/)
  })
  it("ifname: at most 15 bytes", () => {
    expect(ok({ v4: true, ifname: "a".repeat(15) }).ifname).toBe("a".repeat(15))
    expect(err({ v4: true, ifname: "a".repeat(16) })).toMatch(/--ifname/)
    expect(isIfname("tun/0")).toBe(false)
    expect(isIfname("é".repeat(8))).toBe(false) // 16 bytes
  })
  it("refresh at least 1 minute; log level clipped to 7; -v is 7", () => {
    expect(err({ v4: true, refresh: 0 })).toMatch(/--refresh/)
    expect(ok({ v4: true, logLevel: 12 }).logLevel).toBe(7)
    expect(ok({ v4: true, logLevel: 0 }).logLevel).toBe(0)
    expect(ok({ v4: true, verbose: true, logLevel: 3 }).logLevel).toBe(7)
    expect(err({ v4: true, logLevel: -1 })).toMatch(/--log-level/)
  })
  it("mtu: 6in4 needs 1280", () => {
    expect(ok({ v4: true, mtu: 576 }).mtu).toBe(576)
    expect(err({ v6: true, mtu: 1279 })).toMatch(/1280/)
    expect(err({ v4: true, mtu: 65516 })).toMatch(/--mtu/)
  })
  it("addresses: IPv4 and IPv6 CIDR", () => {
    const c = ok({ v4: true, v6: true, addresses: ["198.51.100.1/30", "2001:db8:1::1/64"] })
    expect(c.addresses.map(formatCidr)).toEqual(["198.51.100.1/30", "2001:db8:1::1/64"])
    expect(err({ v4: true, addresses: ["198.51.100.1/33"] })).toMatch(/--address/)
    expect(err({ v4: true, addresses: ["bogus"] })).toMatch(/--address/)
  })
  it("local must be a unicast IPv4 address", () => {
    expect(ok({ v4: true, local: "192.0.2.1" }).local).toBe(0xc0000201)
    expect(err({ v4: true, local: "2001:db8::1" })).toMatch(/--local/)
  })
  it("host names", () => {
    expect(isHostname("tun.domain.com")).toBe(true)
    expect(isHostname("a-b.example.")).toBe(true)
    expect(isHostname("-a.example")).toBe(false)
    expect(isHostname("1.2.3")).toBe(false)
    expect(isHostname("a".repeat(64))).toBe(false)
  })
  it("VERSION matches package.json", () => {
    expect(JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version).toBe(VERSION)
  })
})
