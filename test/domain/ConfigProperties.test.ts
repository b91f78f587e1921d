/**
 * Property tests of `Config.decode` (src/domain/Config.ts), 10,000 cases each: command lines built field by field
 * from valid values (decoded to exactly those values), the same with one field made invalid (refused, naming that
 * field), and arbitrary values of every field (a config or a typed error, never a throw).
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { formatCidr, formatIpv4, formatIpv6, parseCidr } from "../../src/domain/Address.js"
import type { RawConfig, TunnelConfig } from "../../src/domain/Config.js"
import { ConfigError, decode, MAX_IFNAME_BYTES } from "../../src/domain/Config.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const

const unicast4 = fc.integer({ min: 1, max: 0xdfffffff })
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/)
const hostname = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join("."))
  .filter((h) => !/^[0-9.]+$/.test(h) && h.length <= 253)
const ifnameChar = fc.char().filter((c) => !/[/:\s]/.test(c))
const ifname = fc.array(ifnameChar, { minLength: 1, maxLength: MAX_IFNAME_BYTES }).map((cs) => cs.join(""))
  .filter((n) => n !== "." && n !== "..")
const cidr = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([a, p]) =>
    `${formatIpv4(a)}/${p}`
  ),
  fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([b, p]) =>
    `${formatIpv6(b)}/${p}`
  )
)

/** A valid value for every field (or none), and the field of the config it must become. */
const validRaw = fc.record({
  mode: fc.constantFrom("4", "6", "46"),
  remote: fc.option(fc.oneof(unicast4.map(formatIpv4), hostname), { nil: undefined }),
  local: fc.option(unicast4.map(formatIpv4), { nil: undefined }),
  ttl: fc.option(fc.oneof(fc.constant("inherit"), fc.integer({ min: 1, max: 255 }).map(String)), { nil: undefined }),
  ifname: fc.option(ifname, { nil: undefined }),
  refresh: fc.option(fc.integer({ min: 1, max: 525600 }), { nil: undefined }),
  mtu: fc.option(fc.integer({ min: 1280, max: 65515 }), { nil: undefined }),
  mtu4: fc.integer({ min: 68, max: 1279 }),
  table: fc.option(fc.integer({ min: 1, max: 0xffffffff }), { nil: undefined }),
  txQueueLen: fc.option(fc.integer({ min: 1, max: 100000 }), { nil: undefined }),
  icmpRate: fc.option(fc.integer({ min: 0, max: 1000000 }), { nil: undefined }),
  icmpBurst: fc.option(fc.integer({ min: 1, max: 1000000 }), { nil: undefined }),
  logLevel: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: undefined }),
  verbose: fc.option(fc.boolean(), { nil: undefined }),
  addresses: fc.option(fc.array(cidr, { maxLength: 4 }), { nil: undefined }),
  noOffload: fc.option(fc.boolean(), { nil: undefined })
}).map(({ mode, mtu, mtu4, ...rest }): RawConfig => ({
  ...rest,
  v4: mode.includes("4"),
  v6: mode.includes("6"),
  // below 1280 only without 6in4
  mtu: !mode.includes("6") && mtu !== undefined && mtu % 2 === 0 ? mtu4 : mtu
}))

const expected = (raw: RawConfig): TunnelConfig => ({
  v4: raw.v4 === true,
  v6: raw.v6 === true,
  remote: raw.remote === undefined
    ? { _tag: "Dynamic" }
    : /^[0-9.]+$/.test(raw.remote)
    ? { _tag: "Address", addr: raw.remote.split(".").reduce((a, p) => a * 256 + Number(p), 0) }
    : { _tag: "Host", name: raw.remote },
  local: raw.local === undefined ? 0 : raw.local.split(".").reduce((a, p) => a * 256 + Number(p), 0),
  ttl: raw.ttl === undefined ? 64 : raw.ttl === "inherit" ? 0 : Number(raw.ttl),
  ifname: raw.ifname,
  refreshMinutes: raw.refresh ?? 60,
  mtu: raw.mtu ?? 1480,
  addresses: (raw.addresses ?? []).map((a) => parseCidr(a)!),
  logLevel: raw.verbose === true ? 7 : Math.min(7, raw.logLevel ?? 6),
  table: raw.table,
  txQueueLen: raw.txQueueLen ?? 4000,
  batch: 64,
  icmpRatePerSecond: raw.icmpRate ?? 100,
  icmpBurst: raw.icmpBurst ?? 100,
  offload: raw.noOffload !== true
})

/** Invalid values of one field, with the words the refusal must contain. */
const notInteger = fc.oneof(fc.double({ noInteger: true }), fc.constantFrom(Number.NaN, Infinity, -Infinity))
const breakOne: fc.Arbitrary<{ readonly patch: RawConfig; readonly mentions: string }> = fc.oneof(
  fc.constantFrom("0.0.0.0", "224.0.0.1", "239.1.2.3", "255.255.255.255", "1.2.3", "-a.example", "a..b", "")
    .map((remote) => ({ patch: { remote }, mentions: "--remote" })),
  fc.constantFrom("0.0.0.0", "224.0.0.9", "example.org", "1.2.3.4/24", "")
    .map((local) => ({ patch: { local }, mentions: "--local" })),
  fc.oneof(fc.constantFrom("0", "256", "-1", "1.5", " 64", "inherit ", ""), fc.integer({ min: 256 }).map(String))
    .map((ttl) => ({ patch: { ttl }, mentions: "--ttl" })),
  fc.oneof(
    fc.constantFrom("", ".", "..", "a/b", "a:b", "tun 0", "x".repeat(MAX_IFNAME_BYTES + 1), "é".repeat(8))
  ).map((name) => ({ patch: { ifname: name }, mentions: "--ifname" })),
  fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 525601 }), notInteger)
    .map((refresh) => ({ patch: { refresh }, mentions: "--refresh" })),
  fc.oneof(fc.integer({ max: 67 }), fc.integer({ min: 65516 }), notInteger)
    .map((mtu) => ({ patch: { mtu }, mentions: "--mtu" })),
  fc.oneof(fc.integer({ max: 0 }), fc.constant(0x1_0000_0000), notInteger)
    .map((table) => ({ patch: { table }, mentions: "--table" })),
  fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 100001 }), notInteger)
    .map((txQueueLen) => ({ patch: { txQueueLen }, mentions: "--txqueuelen" })),
  fc.oneof(fc.integer({ max: -1 }), fc.integer({ min: 1000001 }), notInteger)
    .map((icmpRate) => ({ patch: { icmpRate }, mentions: "--icmp-rate" })),
  fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 1000001 }), notInteger)
    .map((icmpBurst) => ({ patch: { icmpBurst }, mentions: "--icmp-burst" })),
  fc.oneof(fc.integer({ max: -1 }), notInteger).map((logLevel) => ({ patch: { logLevel }, mentions: "--log-level" })),
  fc.tuple(fc.array(cidr, { maxLength: 2 }), fc.constantFrom("192.0.2.1/33", "2001:db8::/129", "192.0.2/24", "x"))
    .map(([ok, bad]) => ({ patch: { addresses: [...ok, bad] }, mentions: "--address" })),
  fc.constant({ patch: { v4: false, v6: false }, mentions: "-4" })
)

const anyString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "binary-ascii", maxLength: 12 }),
  fc.fullUnicodeString({ maxLength: 10 }),
  cidr,
  hostname
)
const anyNumber = fc.oneof(fc.integer(), fc.double(), fc.integer({ min: -10, max: 70000 }))
const anyRaw: fc.Arbitrary<RawConfig> = fc.record({
  v4: fc.option(fc.boolean(), { nil: undefined }),
  v6: fc.option(fc.boolean(), { nil: undefined }),
  remote: fc.option(anyString, { nil: undefined }),
  local: fc.option(anyString, { nil: undefined }),
  ttl: fc.option(anyString, { nil: undefined }),
  ifname: fc.option(anyString, { nil: undefined }),
  refresh: fc.option(anyNumber, { nil: undefined }),
  mtu: fc.option(anyNumber, { nil: undefined }),
  addresses: fc.option(fc.array(anyString, { maxLength: 3 }), { nil: undefined }),
  logLevel: fc.option(anyNumber, { nil: undefined }),
  verbose: fc.option(fc.boolean(), { nil: undefined }),
  table: fc.option(anyNumber, { nil: undefined }),
  txQueueLen: fc.option(anyNumber, { nil: undefined }),
  icmpRate: fc.option(anyNumber, { nil: undefined }),
  icmpBurst: fc.option(anyNumber, { nil: undefined }),
  noOffload: fc.option(fc.boolean(), { nil: undefined })
})

describe("Config.decode: a reason is one line", () => {
  it("escapes control characters of the value it quotes", () => {
    // Found by the last property below: a line break in a value broke the reason over two lines.
    const reason = (raw: RawConfig) => Either.match(decode(raw), { onLeft: (e) => e.message, onRight: () => "" })
    expect(reason({ v4: true, remote: "\n" })).toBe("--remote must be an IPv4 address or a host name, got '\\n'")
    expect(reason({ v4: true, ifname: "tun\r\n0\u0001" })).toContain("got 'tun\\r\\n0\\x01'")
    expect(reason({ v4: true, ttl: "6\t4" })).toBe("--ttl must be 1 to 255 or 'inherit', got '6\\t4'")
    expect(reason({ v4: true, addresses: ["192.0.2.1/24\u007f"] })).toContain("got '192.0.2.1/24\\x7f'")
    expect(reason({ v4: true, local: "a\u001bb" })).toContain("got 'a\\x1bb'")
  })
})

describe("Config.decode: properties", () => {
  it.prop("decodes any valid command line to exactly its values", { raw: validRaw }, ({ raw }) => {
    const decoded = decode(raw)
    expect(decoded).toEqual(Either.right(expected(raw)))
    const c = Either.getOrThrow(decoded)
    expect(c.addresses.map(formatCidr)).toEqual((raw.addresses ?? []).map((a) => formatCidr(parseCidr(a)!)))
  }, RUNS)

  it.prop("refuses a command line with one bad value, naming the option", {
    raw: validRaw,
    bad: breakOne
  }, ({ bad, raw }) => {
    const decoded = decode({ ...raw, ...bad.patch })
    expect(Either.isLeft(decoded)).toBe(true)
    if (Either.isLeft(decoded)) {
      expect(decoded.left).toBeInstanceOf(ConfigError)
      expect(decoded.left.message).toContain(bad.mentions)
    }
  }, RUNS)

  it.prop("gives a config within every documented range, or a one-line reason, for any values", {
    raw: anyRaw
  }, ({ raw }) => {
    const decoded = decode(raw)
    if (Either.isLeft(decoded)) {
      expect(decoded.left).toBeInstanceOf(ConfigError)
      expect(decoded.left.message.length).toBeGreaterThan(0)
      expect(decoded.left.message).not.toMatch(/[\r\n]/)
      return
    }
    const c = decoded.right
    expect(c.v4 || c.v6).toBe(true)
    expect(c.ttl >= 0 && c.ttl <= 255 && Number.isInteger(c.ttl)).toBe(true)
    expect(c.mtu >= (c.v6 ? 1280 : 68) && c.mtu <= 65515 && Number.isInteger(c.mtu)).toBe(true)
    expect(c.logLevel >= 0 && c.logLevel <= 7 && Number.isInteger(c.logLevel)).toBe(true)
    expect(c.refreshMinutes >= 1 && Number.isInteger(c.refreshMinutes)).toBe(true)
    expect(c.local >= 0 && c.local < 0xe0000000).toBe(true)
    if (c.remote._tag === "Address") expect(c.remote.addr > 0 && c.remote.addr < 0xe0000000).toBe(true)
    if (c.ifname !== undefined) expect(Buffer.byteLength(c.ifname)).toBeLessThanOrEqual(MAX_IFNAME_BYTES)
    expect(c.addresses.length).toBe(raw.addresses?.length ?? 0)
  }, RUNS)
})
