/**
 * Property tests of the address parsers and formatters (src/domain/Address.ts): arbitrary text, near-misses built
 * from valid addresses, and round trips, 10,000 cases each. Node's own `net.isIPv4`/`net.isIPv6` and the WHATWG URL
 * serializer (RFC 5952 compression) serve as independent oracles.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import * as Net from "node:net"
import {
  formatCidr,
  formatIpv4,
  formatIpv6,
  ipv4FromBytes,
  ipv4ToBytes,
  parseCidr,
  parseIpv4,
  parseIpv6
} from "../../src/domain/Address.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const

const u32 = fc.integer({ min: 0, max: 0xffffffff })
const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 })

/** Characters addresses are made of, and a few that are not: near-misses are far likelier than with any string. */
const addressChar = fc.constantFrom(..."0123456789abcdefABCDEFg.:/%- \n".split(""))
const addressLike = fc.array(addressChar, { maxLength: 50 }).map((cs) => cs.join(""))

/** An IPv6 address and one of its text forms: compressed, full, upper case, zero-padded, with an IPv4 tail. */
const ipv6Forms: ReadonlyArray<(b: Uint8Array, groups: ReadonlyArray<string>) => string> = [
  (b) => formatIpv6(b),
  (_, groups) => groups.join(":"),
  (b) => formatIpv6(b).toUpperCase(),
  (_, groups) => groups.map((g) => g.padStart(4, "0")).join(":"),
  (b, groups) => `${groups.slice(0, 6).join(":")}:${formatIpv4(ipv4FromBytes(b, 12))}`
]
const ipv6Form = fc.tuple(bytes16, fc.constantFrom(...ipv6Forms)).map(([b, form]): readonly [Uint8Array, string] => {
  const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16))
  return [b, form(b, groups)]
})
const ipv6Text = ipv6Form.map(([, text]) => text)

/** A valid text with one character changed, inserted or removed. */
const mutate = (text: fc.Arbitrary<string>) =>
  fc.tuple(text, fc.nat(), addressChar, fc.constantFrom("replace", "insert", "delete")).map(([t, at, c, how]) => {
    const i = t.length === 0 ? 0 : at % t.length
    return how === "replace"
      ? t.slice(0, i) + c + t.slice(i + 1)
      : how === "insert"
      ? t.slice(0, i) + c + t.slice(i)
      : t.slice(0, i) + t.slice(i + 1)
  })

const anyText = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.fullUnicodeString({ maxLength: 20 }),
  addressLike,
  mutate(u32.map(formatIpv4)),
  mutate(ipv6Text)
)

describe("Address parsers: properties", () => {
  it.prop("parseIpv4 agrees with Node's net.isIPv4 on any text, and never throws", { text: anyText }, ({ text }) => {
    const v = parseIpv4(text)
    expect(v !== undefined).toBe(Net.isIPv4(text))
    if (v !== undefined) {
      expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true)
      expect(formatIpv4(v)).toBe(text)
    }
  }, RUNS)

  it.prop("parseIpv6 agrees with Node's net.isIPv6 (zone IDs aside), never throws", { text: anyText }, ({ text }) => {
    const v = parseIpv6(text)
    // A zone ID (fe80::1%eth0) names an interface, not part of an address: the daemon has no use for one.
    expect(v !== undefined).toBe(Net.isIPv6(text) && !text.includes("%"))
    if (v !== undefined) {
      expect(v.length).toBe(16)
      expect(parseIpv6(formatIpv6(v))).toEqual(v)
    }
  }, RUNS)

  it.prop("parseIpv4 and formatIpv4 are inverse; the byte forms agree", { addr: u32 }, ({ addr }) => {
    const text = formatIpv4(addr)
    expect(parseIpv4(text)).toBe(addr)
    expect(ipv4FromBytes(ipv4ToBytes(addr))).toBe(addr)
    expect([...ipv4ToBytes(addr)].join(".")).toBe(text)
  }, RUNS)

  it.prop("every text form of an IPv6 address parses to its bytes", { form: ipv6Form }, ({ form: [b, text] }) => {
    expect(parseIpv6(text)).toEqual(b)
  }, RUNS)

  it.prop("formatIpv6 is RFC 5952 text, as the WHATWG URL serializer writes it", { b: bytes16 }, ({ b }) => {
    const text = formatIpv6(b)
    expect(parseIpv6(text)).toEqual(b)
    expect(new URL(`http://[${text}]/`).hostname).toBe(`[${text}]`)
  }, RUNS)

  it.prop("formatIpv6 reads 16 bytes at any offset", {
    b: fc.uint8Array({ minLength: 16, maxLength: 64 }),
    at: fc.nat()
  }, ({ at, b }) => {
    const offset = at % (b.length - 15)
    expect(formatIpv6(b, offset)).toBe(formatIpv6(b.slice(offset, offset + 16)))
  }, RUNS)

  const cidrText = fc.oneof(
    fc.tuple(u32, fc.integer({ min: 0, max: 40 })).map(([a, p]) => `${formatIpv4(a)}/${p}`),
    fc.tuple(bytes16, fc.integer({ min: 0, max: 140 })).map(([b, p]) => `${formatIpv6(b)}/${p}`),
    u32.map(formatIpv4),
    bytes16.map((b) => formatIpv6(b))
  )

  it.prop("parseCidr gives a family, address and prefix in range, or undefined, for any text", {
    text: fc.oneof(anyText, cidrText, mutate(cidrText))
  }, ({ text }) => {
    const c = parseCidr(text)
    if (c === undefined) return
    const [addrText, prefixText] = text.split("/")
    expect(c.addr.length).toBe(c.family === 4 ? 4 : 16)
    expect(c.prefix).toBeGreaterThanOrEqual(0)
    expect(c.prefix).toBeLessThanOrEqual(c.family === 4 ? 32 : 128)
    expect(c.prefix).toBe(prefixText === undefined ? (c.family === 4 ? 32 : 128) : Number(prefixText))
    expect(Net.isIP(addrText ?? "")).toBe(c.family)
    expect(parseCidr(formatCidr(c))).toEqual(c)
  }, RUNS)

  it.prop("parseCidr accepts exactly the prefixes that fit the family", { text: cidrText }, ({ text }) => {
    const [addrText, prefixText] = text.split("/")
    const family = Net.isIP(addrText ?? "")
    const max = family === 4 ? 32 : 128
    expect(parseCidr(text) !== undefined).toBe(prefixText === undefined || Number(prefixText) <= max)
  }, RUNS)
})
