/**
 * Route trie benchmark: 100,000 random IPv4 and IPv6 prefixes with a real table's length mix, then lookups,
 * inserts, removes and memory. Run `node --expose-gc dist/bench/trie.js` (without --expose-gc the memory figures
 * include garbage). Prints a table and writes bench/results/trie.json.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { performance, PerformanceObserver } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import { RouteTrie4, RouteTrie6 } from "../src/domain/RouteTrie.js"
import { makeRandom } from "./lib/Random.js"

const ROUTES = 100_000
const ROUNDS = 7
const LOOKUPS_PER_ROUND = 1 << 20


/** Draws from [value, weight] pairs. */
const makeLengths = (weights: ReadonlyArray<readonly [number, number]>, rnd: () => number) => {
  const total = weights.reduce((a, [, w]) => a + w, 0)
  return (): number => {
    let x = (rnd() / 2 ** 32) * total
    for (const [len, w] of weights) {
      if (x < w) return len
      x -= w
    }
    return weights[weights.length - 1]![0]
  }
}

// Roughly the global BGP table's prefix-length histogram (CIDR Report shares, %), plus a tail of longer
// prefixes like AMPRNet's /29../32 host routes.
const V4_LENGTHS: ReadonlyArray<readonly [number, number]> = [
  [8, 0.02], [10, 0.05], [11, 0.1], [12, 0.2], [13, 0.3], [14, 0.5], [15, 0.8], [16, 1.3], [17, 0.8], [18, 1.3],
  [19, 2.4], [20, 3.8], [21, 4.3], [22, 10.5], [23, 9.0], [24, 62.0], [25, 0.3], [26, 0.3], [27, 0.3], [28, 0.3],
  [29, 0.5], [30, 0.2], [32, 0.5]
]
const V6_LENGTHS: ReadonlyArray<readonly [number, number]> = [
  [16, 0.05], [19, 0.05], [20, 0.1], [24, 0.1], [28, 0.3], [29, 3.5], [30, 0.5], [31, 0.3], [32, 12], [33, 1],
  [34, 1], [35, 1], [36, 3.5], [40, 7], [42, 1], [44, 8], [45, 1], [46, 1.5], [47, 1.5], [48, 52], [52, 0.5],
  [56, 1.5], [64, 2], [128, 0.5]
]

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s[s.length >> 1]!
}

const gc = (globalThis as { gc?: () => void }).gc
const settle = () => new Promise<void>((resolve) => setImmediate(resolve))
const memory = async () => {
  // Twice, with a turn of the event loop between: ArrayBuffer backing stores are released after the collection.
  gc?.()
  await settle()
  gc?.()
  const m = process.memoryUsage()
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers }
}

/** Start times (performance.now() clock) of the GC runs a PerformanceObserver reported. */
interface GcLog {
  readonly starts: Array<number>
}
/** GC entries are delivered asynchronously, some time after the collection. */
const drainGcEntries = () => new Promise<void>((resolve) => setTimeout(resolve, 50))

export interface LookupFigures {
  readonly perSecond: number
  readonly rounds: ReadonlyArray<number>
  /** GC runs during the timed rounds: 0 means the lookups allocated nothing worth collecting. */
  readonly gcDuringRounds: number
}

export interface FamilyFigures {
  readonly prefixes: number
  readonly routes: number
  readonly insertsPerSecond: number
  readonly removesPerSecond: number
  readonly replacesPerSecond: number
  readonly lookupRandom: LookupFigures
  readonly lookupMatching: LookupFigures
  readonly memory: {
    readonly heapDelta: number
    readonly arrayBuffersDelta: number
    readonly trieBytes: number
    readonly nodes: number
  }
}

export interface TrieBenchResult {
  readonly node: string
  readonly date: string
  readonly exposeGc: boolean
  readonly lookupsPerRound: number
  readonly rounds: number
  readonly v4: FamilyFigures
  readonly v6: FamilyFigures
  /** An AMPRNet-sized table: 1,000 routes under 44.0.0.0/9 and 44.128.0.0/10, lookups inside 44.0.0.0/8. */
  readonly amprnet: { readonly routes: number; readonly lookup: LookupFigures }
}

const timeRounds = async (gcs: GcLog, round: () => number): Promise<LookupFigures> => {
  // Warm-up: the first calls run (and allocate) in the interpreter until optimised code replaces them.
  let sink = round() + round() + round()
  await settle()
  const start = performance.now()
  const rates: Array<number> = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint()
    sink = (sink + round()) | 0
    const ns = Number(process.hrtime.bigint() - t0)
    rates.push(Math.round(LOOKUPS_PER_ROUND / (ns / 1e9)))
  }
  const end = performance.now()
  await drainGcEntries()
  const gcDuringRounds = gcs.starts.filter((t) => t >= start && t <= end).length
  if (sink === 0.5) console.log("unreachable") // keeps the results live
  return { perSecond: median(rates), rounds: rates, gcDuringRounds }
}

const ratePerSecond = (count: number, run: () => void): number => {
  const t0 = process.hrtime.bigint()
  run()
  return Math.round(count / (Number(process.hrtime.bigint() - t0) / 1e9))
}

const benchV4 = async (gcs: GcLog): Promise<FamilyFigures> => {
  const rnd = makeRandom(0x1badf00d)
  const len = makeLengths(V4_LENGTHS, rnd)
  const prefixes = new Uint32Array(ROUTES)
  const lengths = new Uint8Array(ROUTES)
  const values = new Uint32Array(ROUTES)
  for (let i = 0; i < ROUTES; i++) {
    // Unicast space 1.0.0.0 - 223.255.255.255.
    prefixes[i] = (0x01000000 + (rnd() % (0xe0000000 - 0x01000000))) >>> 0
    lengths[i] = len()
    values[i] = rnd()
  }
  const random = new Uint32Array(LOOKUPS_PER_ROUND)
  const matching = new Uint32Array(LOOKUPS_PER_ROUND)
  for (let i = 0; i < LOOKUPS_PER_ROUND; i++) {
    random[i] = (0x01000000 + (rnd() % (0xe0000000 - 0x01000000))) >>> 0
    const j = rnd() % ROUTES
    const host = lengths[j] === 32 ? 0 : rnd() & (0xffffffff >>> lengths[j]!)
    matching[i] = (prefixes[j]! | host) >>> 0
  }

  const m0 = await memory()
  const trie = new RouteTrie4()
  const insertsPerSecond = ratePerSecond(ROUTES, () => {
    for (let i = 0; i < ROUTES; i++) trie.insert(prefixes[i]!, lengths[i]!, values[i]!)
  })
  const m1 = await memory()
  const stats = trie.stats()

  const lookupAll = (addrs: Uint32Array) => (): number => {
    let acc = 0
    for (let i = 0; i < addrs.length; i++) acc = (acc + trie.lookup(addrs[i]!)) | 0
    return acc
  }
  const lookupRandom = await timeRounds(gcs, lookupAll(random))
  const lookupMatching = await timeRounds(gcs, lookupAll(matching))

  const replacesPerSecond = ratePerSecond(ROUTES, () => {
    for (let i = 0; i < ROUTES; i++) trie.insert(prefixes[i]!, lengths[i]!, (values[i]! ^ 1) >>> 0)
  })
  const order = Uint32Array.from({ length: ROUTES }, (_, i) => i)
  for (let i = ROUTES - 1; i > 0; i--) {
    const j = rnd() % (i + 1)
    const t = order[i]!
    order[i] = order[j]!
    order[j] = t
  }
  const removesPerSecond = ratePerSecond(ROUTES, () => {
    for (let i = 0; i < ROUTES; i++) trie.remove(prefixes[order[i]!]!, lengths[order[i]!]!)
  })
  if (trie.size !== 0) throw new Error(`v4 table not empty after removing everything: ${trie.size}`)
  return {
    prefixes: ROUTES,
    routes: stats.routes,
    insertsPerSecond,
    removesPerSecond,
    replacesPerSecond,
    lookupRandom,
    lookupMatching,
    memory: {
      heapDelta: m1.heap - m0.heap,
      arrayBuffersDelta: m1.arrayBuffers - m0.arrayBuffers,
      trieBytes: stats.bytes,
      nodes: stats.nodes
    }
  }
}

const benchV6 = async (gcs: GcLog): Promise<FamilyFigures> => {
  const rnd = makeRandom(0x6f6f6f6f)
  const len = makeLengths(V6_LENGTHS, rnd)
  const prefixes = new Uint8Array(ROUTES * 16)
  const lengths = new Uint8Array(ROUTES)
  const values = new Uint32Array(ROUTES)
  // Global unicast 2000::/3, random below.
  const fill = (buf: Uint8Array, at: number) => {
    for (let k = 0; k < 16; k += 4) {
      const w = rnd()
      buf[at + k] = w >>> 24
      buf[at + k + 1] = w >>> 16
      buf[at + k + 2] = w >>> 8
      buf[at + k + 3] = w
    }
    buf[at] = 0x20 | (buf[at]! & 0x1f)
  }
  for (let i = 0; i < ROUTES; i++) {
    fill(prefixes, i * 16)
    lengths[i] = len()
    values[i] = rnd()
  }
  // A quarter of the rounds' addresses, each looked up four times per round: 16 MB less to generate.
  const distinct = LOOKUPS_PER_ROUND >> 2
  const random = new Uint8Array(distinct * 16)
  const matching = new Uint8Array(distinct * 16)
  for (let i = 0; i < distinct; i++) {
    fill(random, i * 16)
    const j = rnd() % ROUTES
    fill(matching, i * 16)
    const l = lengths[j]!
    for (let k = 0; k < 16; k++) {
      const keep = Math.max(0, Math.min(8, l - 8 * k))
      const m = 0xff >>> keep
      matching[i * 16 + k] = (prefixes[j * 16 + k]! & ~m) | (matching[i * 16 + k]! & m)
    }
  }

  const m0 = await memory()
  const trie = new RouteTrie6()
  const insertsPerSecond = ratePerSecond(ROUTES, () => {
    for (let i = 0; i < ROUTES; i++) trie.insert(prefixes, lengths[i]!, values[i]!, i * 16)
  })
  const m1 = await memory()
  const stats = trie.stats()

  const lookupAll = (addrs: Uint8Array) => (): number => {
    let acc = 0
    for (let rep = 0; rep < 4; rep++) {
      for (let off = 0; off < addrs.length; off += 16) acc = (acc + trie.lookup(addrs, off)) | 0
    }
    return acc
  }
  const lookupRandom = await timeRounds(gcs, lookupAll(random))
  const lookupMatching = await timeRounds(gcs, lookupAll(matching))

  const replacesPerSecond = ratePerSecond(ROUTES, () => {
    for (let i = 0; i < ROUTES; i++) trie.insert(prefixes, lengths[i]!, (values[i]! ^ 1) >>> 0, i * 16)
  })
  const removesPerSecond = ratePerSecond(ROUTES, () => {
    // Stride through the list so removals do not follow insertion order.
    for (let k = 0, i = 0; k < ROUTES; k++, i = (i + 7919) % ROUTES) trie.remove(prefixes, lengths[i]!, i * 16)
  })
  if (trie.size !== 0) throw new Error(`v6 table not empty after removing everything: ${trie.size}`)
  return {
    prefixes: ROUTES,
    routes: stats.routes,
    insertsPerSecond,
    removesPerSecond,
    replacesPerSecond,
    lookupRandom,
    lookupMatching,
    memory: {
      heapDelta: m1.heap - m0.heap,
      arrayBuffersDelta: m1.arrayBuffers - m0.arrayBuffers,
      trieBytes: stats.bytes,
      nodes: stats.nodes
    }
  }
}

const benchAmprnet = async (gcs: GcLog): Promise<TrieBenchResult["amprnet"]> => {
  const rnd = makeRandom(44)
  const trie = new RouteTrie4()
  const lengths = makeLengths([[16, 2], [20, 3], [22, 5], [24, 60], [26, 5], [28, 5], [29, 5], [32, 15]], rnd)
  while (trie.size < 1000) {
    // 44.0.0.0/9 and 44.128.0.0/10 (44.192.0.0/10 was sold in 2019).
    const base = rnd() & 1 ? 0x2c000000 + (rnd() & 0x7fffff) : 0x2c800000 + (rnd() & 0x3fffff)
    trie.insert(base >>> 0, lengths(), rnd())
  }
  const addrs = Uint32Array.from({ length: LOOKUPS_PER_ROUND }, () => (0x2c000000 | (rnd() & 0xffffff)) >>> 0)
  const lookup = await timeRounds(gcs, () => {
    let acc = 0
    for (let i = 0; i < addrs.length; i++) acc = (acc + trie.lookup(addrs[i]!)) | 0
    return acc
  })
  return { routes: trie.size, lookup }
}

export const runTrieBench = async (): Promise<TrieBenchResult> => {
  const gcs: GcLog = { starts: [] }
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.starts.push(e.startTime)
  })
  observer.observe({ entryTypes: ["gc"] })
  try {
    const v4 = await benchV4(gcs)
    const v6 = await benchV6(gcs)
    const amprnet = await benchAmprnet(gcs)
    return {
      node: process.version,
      date: new Date().toISOString(),
      exposeGc: gc !== undefined,
      lookupsPerRound: LOOKUPS_PER_ROUND,
      rounds: ROUNDS,
      v4,
      v6,
      amprnet
    }
  } finally {
    observer.disconnect()
  }
}

const mega = (n: number) => `${(n / 1e6).toFixed(2)} M/s`
const kilo = (n: number) => `${(n / 1e3).toFixed(0)} k/s`
const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`

const print = (r: TrieBenchResult): void => {
  const rows: Array<[string, string, string]> = [
    ["", "IPv4", "IPv6"],
    ["routes (distinct of 100k)", String(r.v4.routes), String(r.v6.routes)],
    ["lookup, random addresses", mega(r.v4.lookupRandom.perSecond), mega(r.v6.lookupRandom.perSecond)],
    ["lookup, matching addresses", mega(r.v4.lookupMatching.perSecond), mega(r.v6.lookupMatching.perSecond)],
    [
      "GCs during lookup rounds",
      String(r.v4.lookupRandom.gcDuringRounds + r.v4.lookupMatching.gcDuringRounds),
      String(r.v6.lookupRandom.gcDuringRounds + r.v6.lookupMatching.gcDuringRounds)
    ],
    ["insert", kilo(r.v4.insertsPerSecond), kilo(r.v6.insertsPerSecond)],
    ["replace value", kilo(r.v4.replacesPerSecond), kilo(r.v6.replacesPerSecond)],
    ["remove", kilo(r.v4.removesPerSecond), kilo(r.v6.removesPerSecond)],
    ["trie nodes", String(r.v4.memory.nodes), String(r.v6.memory.nodes)],
    ["typed arrays held", mib(r.v4.memory.trieBytes), mib(r.v6.memory.trieBytes)],
    ["arrayBuffers delta", mib(r.v4.memory.arrayBuffersDelta), mib(r.v6.memory.arrayBuffersDelta)],
    ["heap delta", mib(r.v4.memory.heapDelta), mib(r.v6.memory.heapDelta)]
  ]
  const w0 = Math.max(...rows.map((x) => x[0].length))
  const w1 = Math.max(...rows.map((x) => x[1].length))
  for (const [a, b, c] of rows) console.log(`${a.padEnd(w0)}  ${b.padStart(w1)}  ${c.padStart(12)}`)
  console.log(
    `AMPRNet-like table (${r.amprnet.routes} routes in 44/8), lookups inside 44/8: ${mega(r.amprnet.lookup.perSecond)}`
  )
  console.log(`${r.node}, median of ${r.rounds} rounds of ${r.lookupsPerRound} lookups` +
    (r.exposeGc ? "" : "; run with --expose-gc for memory figures without garbage"))
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]
if (isMain) {
  const result = await runTrieBench()
  print(result)
  const dir = fileURLToPath(new URL("../../bench/results/", import.meta.url))
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}trie.json`, JSON.stringify(result, null, 2) + "\n")
  console.log(`wrote ${dir}trie.json`)
}
