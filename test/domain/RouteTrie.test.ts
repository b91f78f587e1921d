import { FastCheck as fc } from "effect"
import { describe, expect, it } from "vitest"
import { formatIpv6, parseIpv4, parseIpv6 } from "../../src/domain/Address.js"
import { NO_ROUTE, RouteTrie4, RouteTrie6 } from "../../src/domain/RouteTrie.js"

const v4 = (text: string): number => {
  const a = parseIpv4(text)
  if (a === undefined) throw new Error(`bad test address ${text}`)
  return a
}

const v6 = (text: string): Uint8Array => {
  const a = parseIpv6(text)
  if (a === undefined) throw new Error(`bad test address ${text}`)
  return a
}

/** Fixed seeds: failures are reproducible; raise numRuns locally to search harder. */
const FC_OPTS = { seed: 0x4b1f1, numRuns: 300 } as const

// ---- reference models: a plain list searched linearly

const mask4 = (len: number): number => (len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0)

class Model4 {
  readonly routes = new Map<string, { prefix: number; length: number; value: number }>()
  insert(prefix: number, length: number, value: number): boolean {
    const p = (prefix & mask4(length)) >>> 0
    const k = `${p}/${length}`
    const added = !this.routes.has(k)
    this.routes.set(k, { prefix: p, length, value })
    return added
  }
  remove(prefix: number, length: number): boolean {
    return this.routes.delete(`${(prefix & mask4(length)) >>> 0}/${length}`)
  }
  lookup(addr: number): number {
    let bestLen = -1
    let best = NO_ROUTE
    for (const r of this.routes.values()) {
      if (r.length > bestLen && ((addr & mask4(r.length)) >>> 0) === r.prefix) {
        bestLen = r.length
        best = r.value
      }
    }
    return best
  }
}

const ALL = (1n << 128n) - 1n
const mask6 = (len: number): bigint => (ALL >> BigInt(128 - len)) << BigInt(128 - len)
const toBig = (b: Uint8Array, offset = 0): bigint => {
  let x = 0n
  for (let i = 0; i < 16; i++) x = (x << 8n) | BigInt(b[offset + i]!)
  return x
}
const fromBig = (x: bigint): Uint8Array => {
  const out = new Uint8Array(16)
  for (let i = 15; i >= 0; i--) {
    out[i] = Number(x & 255n)
    x >>= 8n
  }
  return out
}

class Model6 {
  readonly routes = new Map<string, { prefix: bigint; length: number; value: number }>()
  insert(prefix: bigint, length: number, value: number): boolean {
    const p = prefix & mask6(length)
    const k = `${p}/${length}`
    const added = !this.routes.has(k)
    this.routes.set(k, { prefix: p, length, value })
    return added
  }
  remove(prefix: bigint, length: number): boolean {
    return this.routes.delete(`${prefix & mask6(length)}/${length}`)
  }
  lookup(addr: bigint): number {
    let bestLen = -1
    let best = NO_ROUTE
    for (const r of this.routes.values()) {
      if (r.length > bestLen && (addr & mask6(r.length)) === r.prefix) {
        bestLen = r.length
        best = r.value
      }
    }
    return best
  }
}

/** Routes longer than `rootBits`: each needs a trie node, plus at most one branching node. */
const longRoutes = (routes: Iterable<{ length: number }>, rootBits: number): number =>
  [...routes].filter((r) => r.length > rootBits).length

const sorted4 = (routes: Iterable<{ prefix: number; length: number; value: number }>) =>
  [...routes].map((r) => `${r.prefix}/${r.length}=${r.value}`).sort()
const sorted6 = (routes: Iterable<{ prefix: Uint8Array | bigint; length: number; value: number }>) =>
  [...routes]
    .map((r) => `${typeof r.prefix === "bigint" ? r.prefix : toBig(r.prefix)}/${r.length}=${r.value}`)
    .sort()

describe("RouteTrie4", () => {
  it("is empty at first", () => {
    const t = new RouteTrie4()
    expect(t.size).toBe(0)
    expect(t.lookup(v4("192.0.2.1"))).toBe(NO_ROUTE)
    expect(t.lookup(0)).toBe(NO_ROUTE)
    expect(t.lookup(0xffffffff)).toBe(NO_ROUTE)
    expect([...t]).toEqual([])
  })

  it("matches everything with a default route, and value 0 is not 'no route'", () => {
    const t = new RouteTrie4()
    expect(t.insert(0, 0, 0)).toBe(true)
    expect(t.lookup(0)).toBe(0)
    expect(t.lookup(v4("203.0.113.9"))).toBe(0)
    expect(t.lookup(0xffffffff)).toBe(0)
    expect(t.size).toBe(1)
  })

  it("matches a /32 host route only for that address", () => {
    const t = new RouteTrie4()
    t.insert(v4("198.51.100.7"), 32, v4("192.0.2.1"))
    expect(t.lookup(v4("198.51.100.7"))).toBe(v4("192.0.2.1"))
    expect(t.lookup(v4("198.51.100.6"))).toBe(NO_ROUTE)
    expect(t.lookup(v4("198.51.100.8"))).toBe(NO_ROUTE)
    expect(t.lookup(v4("70.51.100.7"))).toBe(NO_ROUTE)
  })

  it("picks the longest of overlapping prefixes", () => {
    const t = new RouteTrie4()
    t.insert(0, 0, 1)
    t.insert(v4("192.0.0.0"), 8, 2)
    t.insert(v4("192.0.0.0"), 16, 3)
    t.insert(v4("192.0.2.0"), 24, 4)
    t.insert(v4("192.0.2.128"), 25, 5)
    t.insert(v4("192.0.2.200"), 32, 6)
    t.insert(v4("192.0.2.192"), 26, 7)
    expect(t.lookup(v4("10.0.0.1"))).toBe(1)
    expect(t.lookup(v4("192.200.0.1"))).toBe(2)
    expect(t.lookup(v4("192.0.3.1"))).toBe(3)
    expect(t.lookup(v4("192.0.2.1"))).toBe(4)
    expect(t.lookup(v4("192.0.2.129"))).toBe(5)
    expect(t.lookup(v4("192.0.2.193"))).toBe(7)
    expect(t.lookup(v4("192.0.2.200"))).toBe(6)
    expect(t.lookup(v4("192.0.2.201"))).toBe(7)
    expect(t.size).toBe(7)
  })

  it("replaces the value of a present prefix", () => {
    const t = new RouteTrie4()
    expect(t.insert(v4("203.0.113.0"), 24, 10)).toBe(true)
    expect(t.insert(v4("203.0.113.0"), 24, 11)).toBe(false)
    expect(t.insert(v4("203.0.0.0"), 8, 20)).toBe(true)
    expect(t.insert(v4("203.0.0.0"), 8, 21)).toBe(false)
    expect(t.size).toBe(2)
    expect(t.lookup(v4("203.0.113.5"))).toBe(11)
    expect(t.lookup(v4("203.1.1.1"))).toBe(21)
    expect(t.get(v4("203.0.113.0"), 24)).toBe(11)
  })

  it("restores the shorter match when a prefix is removed", () => {
    const t = new RouteTrie4()
    t.insert(0, 0, 1)
    t.insert(v4("198.0.0.0"), 8, 2)
    t.insert(v4("198.51.0.0"), 16, 3)
    t.insert(v4("198.51.100.0"), 24, 4)
    t.insert(v4("198.51.100.0"), 30, 5)
    const a = v4("198.51.100.1")
    expect(t.lookup(a)).toBe(5)
    expect(t.remove(v4("198.51.100.0"), 30)).toBe(true)
    expect(t.lookup(a)).toBe(4)
    expect(t.remove(v4("198.51.100.0"), 24)).toBe(true)
    expect(t.lookup(a)).toBe(3)
    expect(t.remove(v4("198.51.0.0"), 16)).toBe(true)
    expect(t.lookup(a)).toBe(2)
    expect(t.remove(v4("198.0.0.0"), 8)).toBe(true)
    expect(t.lookup(a)).toBe(1)
    expect(t.remove(0, 0)).toBe(true)
    expect(t.lookup(a)).toBe(NO_ROUTE)
    expect(t.size).toBe(0)
  })

  it("keeps a more specific short prefix when a shorter one is removed", () => {
    const t = new RouteTrie4()
    t.insert(v4("192.0.0.0"), 12, 1)
    t.insert(v4("192.0.0.0"), 14, 2)
    t.insert(v4("192.0.0.0"), 10, 3)
    expect(t.lookup(v4("192.1.0.1"))).toBe(2)
    expect(t.lookup(v4("192.5.0.1"))).toBe(1)
    expect(t.lookup(v4("192.20.0.1"))).toBe(3)
    expect(t.remove(v4("192.0.0.0"), 12)).toBe(true)
    expect(t.lookup(v4("192.1.0.1"))).toBe(2)
    expect(t.lookup(v4("192.5.0.1"))).toBe(3)
  })

  it("ignores host bits beyond the prefix length", () => {
    const t = new RouteTrie4()
    expect(t.insert(v4("192.0.2.77"), 24, 9)).toBe(true)
    expect(t.insert(v4("192.0.2.1"), 24, 8)).toBe(false)
    expect(t.insert(v4("198.51.255.255"), 9, 7)).toBe(true)
    expect(sorted4(t)).toEqual(sorted4([
      { prefix: v4("192.0.2.0"), length: 24, value: 8 },
      { prefix: v4("198.0.0.0"), length: 9, value: 7 }
    ]))
    expect(t.lookup(v4("192.0.2.200"))).toBe(8)
    expect(t.get(v4("192.0.2.99"), 24)).toBe(8)
    expect(t.remove(v4("192.0.2.250"), 24)).toBe(true)
    expect(t.remove(v4("198.127.0.0"), 9)).toBe(true)
    expect(t.size).toBe(0)
  })

  it("reports a missing route on remove and changes nothing", () => {
    const t = new RouteTrie4()
    expect(t.remove(v4("192.0.2.0"), 24)).toBe(false)
    // Two /25s share a branching node at /24 that carries no route of its own.
    t.insert(v4("192.0.2.0"), 25, 1)
    t.insert(v4("192.0.2.128"), 25, 2)
    t.insert(v4("192.0.0.0"), 16, 3)
    expect(t.remove(v4("192.0.2.0"), 24)).toBe(false)
    expect(t.remove(v4("192.0.2.0"), 26)).toBe(false)
    expect(t.remove(v4("192.0.2.0"), 32)).toBe(false)
    expect(t.remove(v4("192.0.0.0"), 8)).toBe(false)
    expect(t.remove(v4("192.0.0.0"), 17)).toBe(false)
    expect(t.remove(0, 0)).toBe(false)
    expect(t.get(v4("192.0.2.0"), 24)).toBe(NO_ROUTE)
    expect(t.size).toBe(3)
    expect(t.lookup(v4("192.0.2.1"))).toBe(1)
    expect(t.lookup(v4("192.0.2.129"))).toBe(2)
    expect(t.lookup(v4("192.0.3.1"))).toBe(3)
  })

  it("collapses branching nodes so removed subtrees stop matching", () => {
    const t = new RouteTrie4()
    t.insert(v4("192.0.2.0"), 25, 1)
    t.insert(v4("192.0.2.128"), 25, 2)
    t.insert(v4("192.0.2.64"), 26, 3)
    expect(t.remove(v4("192.0.2.0"), 25)).toBe(true)
    expect(t.lookup(v4("192.0.2.1"))).toBe(NO_ROUTE)
    expect(t.lookup(v4("192.0.2.65"))).toBe(3)
    expect(t.remove(v4("192.0.2.64"), 26)).toBe(true)
    expect(t.lookup(v4("192.0.2.65"))).toBe(NO_ROUTE)
    expect(t.lookup(v4("192.0.2.129"))).toBe(2)
    // Freed nodes are reused without leaking stale children.
    t.insert(v4("192.0.2.0"), 28, 4)
    expect(t.lookup(v4("192.0.2.129"))).toBe(2)
    expect(t.lookup(v4("192.0.2.1"))).toBe(4)
    expect(t.lookup(v4("192.0.2.17"))).toBe(NO_ROUTE)
    // Two routes and the branching node above them at /24.
    expect(t.stats().nodes).toBe(3)
    t.remove(v4("192.0.2.0"), 28)
    expect(t.stats().nodes).toBe(1)
  })

  it("carries full u32 values, 255.255.255.255 included", () => {
    const t = new RouteTrie4()
    t.insert(v4("192.0.2.0"), 24, 0xffffffff)
    t.insert(v4("192.0.0.0"), 16, 0x80000000)
    t.insert(v4("192.0.2.0"), 32, 0)
    expect(t.lookup(v4("192.0.2.1"))).toBe(0xffffffff)
    expect(t.lookup(v4("192.0.3.1"))).toBe(0x80000000)
    expect(t.lookup(v4("192.0.2.0"))).toBe(0)
  })

  it("accepts the address as an int32 with the same bits", () => {
    const t = new RouteTrie4()
    t.insert(v4("203.0.113.0"), 24, 5)
    expect(t.lookup(v4("203.0.113.4") | 0)).toBe(5)
  })

  it("rejects invalid arguments", () => {
    const t = new RouteTrie4()
    expect(() => t.insert(0, 33, 1)).toThrow(RangeError)
    expect(() => t.insert(0, -1, 1)).toThrow(RangeError)
    expect(() => t.insert(0, 1.5, 1)).toThrow(RangeError)
    expect(() => t.insert(0, 8, -1)).toThrow(RangeError)
    expect(() => t.insert(0, 8, 2 ** 32)).toThrow(RangeError)
    expect(() => t.insert(0, 8, Number.NaN)).toThrow(RangeError)
    expect(() => t.insert(2 ** 32, 8, 1)).toThrow(RangeError)
    expect(() => t.insert(-1, 8, 1)).toThrow(RangeError)
    expect(() => t.remove(0, 40)).toThrow(RangeError)
    expect(t.size).toBe(0)
  })

  it("clears everything and can be refilled", () => {
    const t = new RouteTrie4()
    t.insert(0, 0, 1)
    t.insert(v4("192.0.2.0"), 24, 2)
    t.insert(v4("192.0.2.0"), 28, 3)
    t.clear()
    expect(t.size).toBe(0)
    expect(t.lookup(v4("192.0.2.1"))).toBe(NO_ROUTE)
    expect([...t.entries()]).toEqual([])
    t.insert(v4("192.0.2.0"), 28, 4)
    expect(t.lookup(v4("192.0.2.1"))).toBe(4)
    expect(t.size).toBe(1)
  })

  it("lists its entries", () => {
    const t = new RouteTrie4()
    const routes = [
      { prefix: 0, length: 0, value: 1 },
      { prefix: v4("192.0.0.0"), length: 16, value: 2 },
      { prefix: v4("192.0.2.0"), length: 24, value: 3 },
      { prefix: v4("192.0.2.128"), length: 25, value: 4 },
      { prefix: v4("198.51.100.1"), length: 32, value: 0xfffffffe }
    ]
    for (const r of routes) t.insert(r.prefix, r.length, r.value)
    expect(sorted4(t.entries())).toEqual(sorted4(routes))
  })

  it("agrees with a linear search on 4000 seeded random routes under churn", () => {
    let seed = 0x9e3779b9
    const rnd = (): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return seed >>> 0
    }
    const lens = [8, 12, 16, 17, 19, 20, 22, 23, 24, 24, 24, 24, 25, 28, 30, 32]
    const t = new RouteTrie4()
    const m = new Model4()
    // Clustered under a few /12s so the tries under each root slot get deep.
    const bases = [v4("192.0.0.0"), v4("198.48.0.0"), v4("203.0.0.0"), v4("44.128.0.0")]
    const draw = (): number => ((bases[rnd() % bases.length]! & 0xfff00000) | (rnd() & 0x000fffff)) >>> 0
    const added: Array<[number, number]> = []
    for (let i = 0; i < 4000; i++) {
      const p = draw()
      const l = lens[rnd() % lens.length]!
      const value = rnd()
      expect(t.insert(p, l, value)).toBe(m.insert(p, l, value))
      added.push([p, l])
    }
    for (let i = 0; i < added.length; i += 2) {
      const [p, l] = added[i]!
      expect(t.remove(p, l)).toBe(m.remove(p, l))
    }
    expect(t.size).toBe(m.routes.size)
    for (let i = 0; i < 3000; i++) {
      const a = draw()
      expect(t.lookup(a)).toBe(m.lookup(a))
    }
    expect(sorted4(t)).toEqual(sorted4(m.routes.values()))
    expect(t.stats().nodes).toBeLessThanOrEqual(2 * longRoutes(m.routes.values(), 16))
  })
})

describe("RouteTrie4 properties", () => {
  // Few bases, so random prefixes overlap and share root slots; the length decides how much of the base survives.
  const BASES4 = [0, v4("192.0.2.0"), v4("192.0.130.0"), v4("198.51.100.0"), v4("203.0.113.0"), 0xffffffff]
  const addr4 = fc
    .tuple(fc.constantFrom(...BASES4), fc.integer({ min: 0, max: 32 }), fc.integer({ min: 0, max: 0xffffffff }))
    .map(([base, free, r]) => ((base & mask4(32 - free)) | (r & ~mask4(32 - free))) >>> 0)
  const len4 = fc.oneof(fc.integer({ min: 0, max: 32 }), fc.constantFrom(0, 8, 15, 16, 17, 23, 24, 25, 31, 32))
  const value = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 0x7fffffff, 0xffffffff))
  const op4 = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("insert" as const), addr: addr4, len: len4, value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), addr: addr4, len: len4 }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("removeExisting" as const), pick: fc.nat() }) }
  )

  it("lookup, get, size and entries agree with a linear search under random inserts and removes", () => {
    fc.assert(
      fc.property(fc.array(op4, { maxLength: 80 }), fc.array(addr4, { maxLength: 40 }), (ops, probes) => {
        const t = new RouteTrie4()
        const m = new Model4()
        const touched: Array<number> = []
        for (const op of ops) {
          if (op.kind === "insert") {
            expect(t.insert(op.addr, op.len, op.value)).toBe(m.insert(op.addr, op.len, op.value))
            touched.push(op.addr)
          } else if (op.kind === "remove") {
            expect(t.remove(op.addr, op.len)).toBe(m.remove(op.addr, op.len))
          } else {
            const live = [...m.routes.values()]
            if (live.length === 0) continue
            const r = live[op.pick % live.length]!
            expect(t.remove(r.prefix, r.length)).toBe(m.remove(r.prefix, r.length))
            expect(t.get(r.prefix, r.length)).toBe(NO_ROUTE)
          }
          expect(t.size).toBe(m.routes.size)
          for (const a of touched) expect(t.lookup(a)).toBe(m.lookup(a))
        }
        for (const a of probes) expect(t.lookup(a)).toBe(m.lookup(a))
        for (const r of m.routes.values()) expect(t.get(r.prefix, r.length)).toBe(r.value)
        expect(sorted4(t)).toEqual(sorted4(m.routes.values()))
        expect(t.stats().nodes).toBeLessThanOrEqual(2 * longRoutes(m.routes.values(), 16))
        for (const r of m.routes.values()) t.remove(r.prefix, r.length)
        expect(t.stats()).toMatchObject({ routes: 0, nodes: 0 })
      }),
      FC_OPTS
    )
  })
})

describe("RouteTrie6", () => {
  const GW = v4("192.0.2.1")

  it("is empty at first", () => {
    const t = new RouteTrie6()
    expect(t.size).toBe(0)
    expect(t.lookup(v6("2001:db8::1"), 0)).toBe(NO_ROUTE)
    expect(t.lookup(new Uint8Array(16), 0)).toBe(NO_ROUTE)
  })

  it("matches everything with a default route, value 0 included", () => {
    const t = new RouteTrie6()
    expect(t.insert(v6("::"), 0, 0)).toBe(true)
    expect(t.lookup(v6("2001:db8::1"), 0)).toBe(0)
    expect(t.lookup(v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), 0)).toBe(0)
  })

  it("matches a /128 host route only for that address", () => {
    const t = new RouteTrie6()
    t.insert(v6("2001:db8:1:2:3:4:5:6"), 128, GW)
    expect(t.lookup(v6("2001:db8:1:2:3:4:5:6"), 0)).toBe(GW)
    expect(t.lookup(v6("2001:db8:1:2:3:4:5:7"), 0)).toBe(NO_ROUTE)
    expect(t.lookup(v6("2001:db8:1:2:3:4:5:4"), 0)).toBe(NO_ROUTE)
    expect(t.lookup(v6("2001:db8:8001:2:3:4:5:6"), 0)).toBe(NO_ROUTE)
  })

  it("picks the longest of overlapping prefixes across all four words", () => {
    const t = new RouteTrie6()
    t.insert(v6("2000::"), 3, 1)
    t.insert(v6("2001:db8::"), 32, 2)
    t.insert(v6("2001:db8:1::"), 48, 3)
    t.insert(v6("2001:db8:1:2::"), 64, 4)
    t.insert(v6("2001:db8:1:2:8000::"), 65, 5)
    t.insert(v6("2001:db8:1:2:3:4::"), 96, 6)
    t.insert(v6("2001:db8:1:2:3:4:5:0"), 112, 7)
    t.insert(v6("2001:db8:1:2:3:4:5:6"), 127, 8)
    expect(t.lookup(v6("3fff::1"), 0)).toBe(1)
    expect(t.lookup(v6("2001:db9::1"), 0)).toBe(1)
    expect(t.lookup(v6("2001:db8:2::1"), 0)).toBe(2)
    expect(t.lookup(v6("2001:db8:1:3::1"), 0)).toBe(3)
    expect(t.lookup(v6("2001:db8:1:2:4::1"), 0)).toBe(4)
    expect(t.lookup(v6("2001:db8:1:2:8003::1"), 0)).toBe(5)
    expect(t.lookup(v6("2001:db8:1:2:3:4:6:1"), 0)).toBe(6)
    expect(t.lookup(v6("2001:db8:1:2:3:4:5:1"), 0)).toBe(7)
    expect(t.lookup(v6("2001:db8:1:2:3:4:5:7"), 0)).toBe(8)
    expect(t.lookup(v6("4000::1"), 0)).toBe(NO_ROUTE)
  })

  it("reads the address at an offset, e.g. straight out of an IPv6 header", () => {
    const t = new RouteTrie6()
    t.insert(v6("2001:db8:aa::"), 48, GW)
    const pkt = new Uint8Array(60)
    pkt.set(v6("2001:db8:bb::1"), 8) // source
    pkt.set(v6("2001:db8:aa::5"), 24) // destination
    expect(t.lookup(pkt, 24)).toBe(GW)
    expect(t.lookup(pkt, 8)).toBe(NO_ROUTE)
    // Insert from an offset too (a netlink attribute).
    const attr = new Uint8Array(20)
    attr.set(v6("2001:db8:bb::"), 4)
    expect(t.insert(attr, 48, 7, 4)).toBe(true)
    expect(t.lookup(pkt, 8)).toBe(7)
  })

  it("replaces, removes back to the shorter match, and reports missing routes", () => {
    const t = new RouteTrie6()
    expect(t.insert(v6("2001:db8::"), 32, 1)).toBe(true)
    expect(t.insert(v6("2001:db8::"), 32, 2)).toBe(false)
    expect(t.insert(v6("2001:db8:0:1::"), 64, 3)).toBe(true)
    expect(t.insert(v6("2001::"), 16, 4)).toBe(true)
    const a = v6("2001:db8:0:1::99")
    expect(t.lookup(a, 0)).toBe(3)
    expect(t.remove(v6("2001:db8:0:1::"), 63)).toBe(false)
    expect(t.remove(v6("2001:db8:0:1::"), 64)).toBe(true)
    expect(t.remove(v6("2001:db8:0:1::"), 64)).toBe(false)
    expect(t.lookup(a, 0)).toBe(2)
    expect(t.remove(v6("2001:db8::"), 32)).toBe(true)
    expect(t.lookup(a, 0)).toBe(4)
    expect(t.remove(v6("2001::"), 16)).toBe(true)
    expect(t.lookup(a, 0)).toBe(NO_ROUTE)
    expect(t.size).toBe(0)
  })

  it("ignores host bits beyond the prefix length", () => {
    const t = new RouteTrie6()
    t.insert(v6("2001:db8:1:2:3:4:5:6"), 33, 5)
    expect([...t].map((r) => `${formatIpv6(r.prefix)}/${r.length}`)).toEqual(["2001:db8::/33"])
    expect(t.get(v6("2001:db8:7fff::"), 33)).toBe(5)
    expect(t.lookup(v6("2001:db8:7fff::1"), 0)).toBe(5)
    expect(t.lookup(v6("2001:db8:8000::1"), 0)).toBe(NO_ROUTE)
    expect(t.remove(v6("2001:db8:1234::"), 33)).toBe(true)
    expect(t.size).toBe(0)
  })

  it("rejects invalid arguments", () => {
    const t = new RouteTrie6()
    expect(() => t.insert(v6("::"), 129, 1)).toThrow(RangeError)
    expect(() => t.insert(v6("::"), 64, -1)).toThrow(RangeError)
    expect(() => t.insert(new Uint8Array(15), 64, 1)).toThrow(RangeError)
    expect(() => t.insert(new Uint8Array(20), 64, 1, 5)).toThrow(RangeError)
    expect(t.size).toBe(0)
  })

  it("clears everything", () => {
    const t = new RouteTrie6()
    t.insert(v6("::"), 0, 1)
    t.insert(v6("2001:db8::"), 64, 2)
    t.clear()
    expect(t.size).toBe(0)
    expect(t.lookup(v6("2001:db8::1"), 0)).toBe(NO_ROUTE)
    t.insert(v6("2001:db8::"), 48, 3)
    expect(t.lookup(v6("2001:db8::1"), 0)).toBe(3)
  })
})

describe("RouteTrie6 properties", () => {
  const BASES6 = [
    "::",
    "2001:db8::",
    "2001:db8:0:1::",
    "2001:db8:8000:ffff:1:2:3:4",
    "2001:db9::",
    "3fff:ffff::",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"
  ].map((s) => toBig(v6(s)))
  const addr6 = fc
    .tuple(fc.constantFrom(...BASES6), fc.integer({ min: 0, max: 128 }), fc.bigUintN(128))
    .map(([base, free, r]) => (base & mask6(128 - free)) | (r & ~mask6(128 - free) & ALL))
  const len6 = fc.oneof(
    fc.integer({ min: 0, max: 128 }),
    fc.constantFrom(0, 3, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 97, 127, 128)
  )
  const value = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 0xffffffff))
  const op6 = fc.oneof(
    { weight: 3, arbitrary: fc.record({ kind: fc.constant("insert" as const), addr: addr6, len: len6, value }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant("remove" as const), addr: addr6, len: len6 }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant("removeExisting" as const), pick: fc.nat() }) }
  )

  it("lookup, get, size and entries agree with a linear search under random inserts and removes", () => {
    fc.assert(
      fc.property(fc.array(op6, { maxLength: 60 }), fc.array(addr6, { maxLength: 30 }), (ops, probes) => {
        const t = new RouteTrie6()
        const m = new Model6()
        const touched: Array<bigint> = []
        // Look up at an odd offset inside a larger buffer, as from a packet.
        const buf = new Uint8Array(40)
        const look = (a: bigint): number => {
          buf.set(fromBig(a), 7)
          return t.lookup(buf, 7)
        }
        for (const op of ops) {
          if (op.kind === "insert") {
            expect(t.insert(fromBig(op.addr), op.len, op.value)).toBe(m.insert(op.addr, op.len, op.value))
            touched.push(op.addr)
          } else if (op.kind === "remove") {
            expect(t.remove(fromBig(op.addr), op.len)).toBe(m.remove(op.addr, op.len))
          } else {
            const live = [...m.routes.values()]
            if (live.length === 0) continue
            const r = live[op.pick % live.length]!
            expect(t.remove(fromBig(r.prefix), r.length)).toBe(m.remove(r.prefix, r.length))
            expect(t.get(fromBig(r.prefix), r.length)).toBe(NO_ROUTE)
          }
          expect(t.size).toBe(m.routes.size)
          for (const a of touched) expect(look(a)).toBe(m.lookup(a))
        }
        for (const a of probes) expect(look(a)).toBe(m.lookup(a))
        for (const r of m.routes.values()) expect(t.get(fromBig(r.prefix), r.length)).toBe(r.value)
        expect(sorted6(t)).toEqual(sorted6(m.routes.values()))
        expect(t.stats().nodes).toBeLessThanOrEqual(2 * longRoutes(m.routes.values(), 16))
        for (const r of m.routes.values()) t.remove(fromBig(r.prefix), r.length)
        expect(t.stats()).toMatchObject({ routes: 0, nodes: 0 })
      }),
      FC_OPTS
    )
  })
})
