/**
 * Longest-prefix-match route tables for dynamic mode (behaviour.md "Routes"): inner destination -> gateway.
 *
 * Layout, shared by both families:
 * - a direct table indexed by the first 16 address bits. Each slot holds the best prefix of length 0..16 covering it
 *   (expanded on insert) and the root of a path-compressed binary (Patricia) trie holding the longer prefixes that
 *   start with those 16 bits;
 * - prefixes of length 0..16 are kept once in an implicit binary heap (index `(1 << length) | topBits`), so the
 *   parent of a prefix is `index >>> 1` and replacing a value never touches the expanded slots;
 * - trie nodes live in one Int32Array pool (8 words a node, free list, grown by doubling), their values in a
 *   Float64Array beside it.
 *
 * A lookup is one slot read plus a short walk (the trie under one /16 holds few prefixes in any real table) over
 * typed arrays: no Map, no string, no object. Values are u32 (the gateway; 0, "route without gateway", is a value
 * like any other) and `NO_ROUTE` (-1) means no prefix matched.
 *
 * Allocation (V8 on 64-bit, measured with bench/trie.ts): when the JIT inlines `lookup` into its caller nothing is
 * allocated. When it does not, V8 boxes any number outside the int32 range that crosses the call: a result of 2^31
 * or more, and an IPv4 argument of 2^31 or more (pass `addr | 0`, which `RouteTrie4.lookup` accepts, to avoid that).
 *
 * Pure and synchronous; invalid arguments to the update methods (a length out of range, a value that is not a u32)
 * are programming errors and throw a RangeError. Lookups never throw.
 */

/** Returned by `lookup` and `get` when no route matches. */
export const NO_ROUTE = -1

export interface Route4 {
  /** Network address as a u32, host bits zero. */
  readonly prefix: number
  readonly length: number
  readonly value: number
}

export interface Route6 {
  /** Network address, 16 bytes, host bits zero (a fresh copy). */
  readonly prefix: Uint8Array
  readonly length: number
  readonly value: number
}

/** Occupancy, for benchmarks and diagnostics. */
export interface TrieStats {
  readonly routes: number
  /** Trie nodes in use (routes longer than /16 plus branching nodes; at most twice those routes). */
  readonly nodes: number
  /** Bytes held in typed arrays, spare capacity included. */
  readonly bytes: number
}

const ROOT_BITS = 16
const ROOT_SLOTS = 1 << ROOT_BITS
/** Heap indices of all prefixes of length 0..16: 1 .. 2^17 - 1. */
const SHORT_SIZE = 1 << (ROOT_BITS + 1)

/** Node layout in the pool (Int32 words). Node 0 is the null link. */
const NODE = 8
const F_LEN = 0 // prefix length in bits 0..7, HAS_ROUTE in bit 8
const F_C0 = 1 // child for next bit 0 (also the free-list link)
const F_C1 = 2
// word 3 is spare
const F_KEY = 4 // 4 key words, most significant first, host bits zero
const HAS_ROUTE = 256
const LEN_MASK = 255
const INITIAL_NODES = 1024

const checkLength = (length: number, max: number): void => {
  if (!Number.isInteger(length) || length < 0 || length > max) {
    throw new RangeError(`prefix length must be an integer 0..${max}, got ${length}`)
  }
}

const checkU32 = (what: string, v: number): void => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be a u32, got ${v}`)
}

/** IPv4 network mask as a u32; `length` 0..32 (`<< 32` is `<< 0` in JS, hence the special case). */
const mask4 = (length: number): number => (length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0)

/** Big-endian 32-bit word at `bytes[offset]`, as an int32. */
const readWord = (bytes: Uint8Array, offset: number): number =>
  (bytes[offset]! << 24) | (bytes[offset + 1]! << 16) | (bytes[offset + 2]! << 8) | bytes[offset + 3]!

/**
 * The family-independent part: keys are four 32-bit words (IPv4 uses word 0 only), passed in `key`.
 * Methods taking a length read the key from `key`, already masked to that length.
 */
class Core {
  /** Per root slot: [heap index of the best short prefix or 0, trie root node or 0]. */
  readonly slots = new Int32Array(ROOT_SLOTS * 2)
  /**
   * Values by heap index; index 0 holds NO_ROUTE so a slot without a short prefix needs no branch. Values are
   * kept as doubles: V8 may box a u32 of 2^31 or more that meets -1 in a merge, a Float64Array load it keeps raw.
   */
  readonly shortValues = new Float64Array(SHORT_SIZE).fill(NO_ROUTE, 0, 1)
  private readonly shortPresent = new Uint8Array(SHORT_SIZE)
  nodes = new Int32Array(INITIAL_NODES * NODE)
  /** Value of the route held by each node, indexed by node number (doubles, as `shortValues`). */
  nodeValues = new Float64Array(INITIAL_NODES)
  /** Scratch key for updates. */
  readonly key = new Int32Array(4)
  private nextNode = 1
  private freeHead = 0
  private shortCount = 0
  private longCount = 0
  private liveNodes = 0

  get size(): number {
    return this.shortCount + this.longCount
  }

  stats(): TrieStats {
    const bytes = this.slots.byteLength + this.shortValues.byteLength + this.shortPresent.byteLength +
      this.nodes.byteLength + this.nodeValues.byteLength + this.key.byteLength
    return { routes: this.size, nodes: this.liveNodes, bytes }
  }

  /** Zero the bits of `key` beyond `length` (host bits). */
  maskKey(length: number): void {
    const key = this.key
    for (let w = 0; w < 4; w++) {
      const r = length - 32 * w
      if (r <= 0) key[w] = 0
      else if (r < 32) key[w] = key[w]! & (-1 << (32 - r))
    }
  }

  insert(length: number, value: number): boolean {
    return length <= ROOT_BITS ? this.insertShort(length, value) : this.insertLong(length, value)
  }

  remove(length: number): boolean {
    return length <= ROOT_BITS ? this.removeShort(length) : this.removeLong(length)
  }

  get(length: number): number {
    if (length <= ROOT_BITS) {
      const idx = this.shortIndex(length)
      return this.shortPresent[idx] === 1 ? this.shortValues[idx]! : NO_ROUTE
    }
    const n = this.findExact(length)
    return n === 0 ? NO_ROUTE : this.nodeValues[n]!
  }

  clear(): void {
    this.slots.fill(0)
    this.shortPresent.fill(0)
    // Capacity is kept: a clear is followed by a full reload (netlink re-dump after ENOBUFS).
    this.nextNode = 1
    this.freeHead = 0
    this.shortCount = 0
    this.longCount = 0
    this.liveNodes = 0
  }

  // ---- prefixes of length 0..16: heap-indexed, expanded into the root slots

  private shortIndex(length: number): number {
    return length === 0 ? 1 : (1 << length) | (this.key[0]! >>> (32 - length))
  }

  private insertShort(length: number, value: number): boolean {
    const idx = this.shortIndex(length)
    this.shortValues[idx] = value
    if (this.shortPresent[idx] === 1) return false
    this.shortPresent[idx] = 1
    this.shortCount++
    // Every short prefix covering one of these slots is an ancestor or a descendant of this one in the heap, and
    // a longer prefix has a larger index: keep the larger.
    const slots = this.slots
    const first = (idx ^ (1 << length)) << (ROOT_BITS - length)
    const end = first + (1 << (ROOT_BITS - length))
    for (let s = first; s < end; s++) if (slots[2 * s]! < idx) slots[2 * s] = idx
    return true
  }

  private removeShort(length: number): boolean {
    const idx = this.shortIndex(length)
    if (this.shortPresent[idx] === 0) return false
    this.shortPresent[idx] = 0
    this.shortCount--
    let parent = idx >>> 1
    while (parent !== 0 && this.shortPresent[parent] === 0) parent >>>= 1
    const slots = this.slots
    const first = (idx ^ (1 << length)) << (ROOT_BITS - length)
    const end = first + (1 << (ROOT_BITS - length))
    for (let s = first; s < end; s++) if (slots[2 * s] === idx) slots[2 * s] = parent
    return true
  }

  // ---- prefixes of length 17..128: one Patricia trie per root slot

  /** Bit `pos` (0 = most significant) of the scratch key. */
  private keyBit(pos: number): number {
    return (this.key[pos >>> 5]! >>> (31 - (pos & 31))) & 1
  }

  private nodeBit(n: number, pos: number): number {
    return (this.nodes[n * NODE + F_KEY + (pos >>> 5)]! >>> (31 - (pos & 31))) & 1
  }

  /** Length of the common prefix of the scratch key and node `n`'s key, at most `limit`. */
  private commonPrefix(n: number, limit: number): number {
    const nodes = this.nodes
    const key = this.key
    const base = n * NODE + F_KEY
    for (let w = 0; 32 * w < limit; w++) {
      const x = key[w]! ^ nodes[base + w]!
      if (x !== 0) return Math.min(32 * w + Math.clz32(x), limit)
    }
    return limit
  }

  /** Sets the link from `parent` (0: the root slot of the scratch key) in direction `dir` to `child`. */
  private link(parent: number, dir: number, child: number): void {
    if (parent === 0) this.slots[2 * (this.key[0]! >>> 16) + 1] = child
    else this.nodes[parent * NODE + F_C0 + dir] = child
  }

  /** A node for the scratch key cut to `length`. */
  private alloc(length: number, flags: number, value: number): number {
    let n = this.freeHead
    if (n !== 0) {
      this.freeHead = this.nodes[n * NODE + F_C0]!
    } else {
      n = this.nextNode++
      if (n * NODE >= this.nodes.length) {
        const grown = new Int32Array(this.nodes.length * 2)
        grown.set(this.nodes)
        this.nodes = grown
        const values = new Float64Array(this.nodeValues.length * 2)
        values.set(this.nodeValues)
        this.nodeValues = values
      }
    }
    this.liveNodes++
    const nodes = this.nodes
    const key = this.key
    const b = n * NODE
    nodes[b + F_LEN] = length | flags
    nodes[b + F_C0] = 0
    nodes[b + F_C1] = 0
    this.nodeValues[n] = value
    for (let w = 0; w < 4; w++) {
      const r = length - 32 * w
      nodes[b + F_KEY + w] = r <= 0 ? 0 : r < 32 ? key[w]! & (-1 << (32 - r)) : key[w]!
    }
    return n
  }

  private release(n: number): void {
    this.nodes[n * NODE + F_C0] = this.freeHead
    this.freeHead = n
    this.liveNodes--
  }

  private insertLong(length: number, value: number): boolean {
    let parent = 0
    let dir = 0
    let n = this.slots[2 * (this.key[0]! >>> 16) + 1]!
    for (;;) {
      if (n === 0) {
        this.link(parent, dir, this.alloc(length, HAS_ROUTE, value))
        this.longCount++
        return true
      }
      const b = n * NODE
      const nlen = this.nodes[b + F_LEN]! & LEN_MASK
      const common = this.commonPrefix(n, Math.min(length, nlen))
      if (common === nlen) {
        if (nlen === length) {
          this.nodeValues[n] = value
          if ((this.nodes[b + F_LEN]! & HAS_ROUTE) !== 0) return false
          this.nodes[b + F_LEN] = nlen | HAS_ROUTE
          this.longCount++
          return true
        }
        parent = n
        dir = this.keyBit(nlen)
        n = this.nodes[b + F_C0 + dir]!
        continue
      }
      // The new prefix leaves n's path above n: put a node at the branching point.
      if (common === length) {
        const x = this.alloc(length, HAS_ROUTE, value)
        this.nodes[x * NODE + F_C0 + this.nodeBit(n, length)] = n
        this.link(parent, dir, x)
      } else {
        const glue = this.alloc(common, 0, 0)
        const leaf = this.alloc(length, HAS_ROUTE, value)
        const side = this.keyBit(common)
        this.nodes[glue * NODE + F_C0 + side] = leaf
        this.nodes[glue * NODE + F_C0 + (side ^ 1)] = n
        this.link(parent, dir, glue)
      }
      this.longCount++
      return true
    }
  }

  /** The node holding a route for exactly the scratch key / `length`, or 0. */
  private findExact(length: number): number {
    let n = this.slots[2 * (this.key[0]! >>> 16) + 1]!
    while (n !== 0) {
      const f = this.nodes[n * NODE + F_LEN]!
      const nlen = f & LEN_MASK
      if (nlen > length || this.commonPrefix(n, nlen) < nlen) return 0
      if (nlen === length) return (f & HAS_ROUTE) !== 0 ? n : 0
      n = this.nodes[n * NODE + F_C0 + this.keyBit(nlen)]!
    }
    return 0
  }

  private removeLong(length: number): boolean {
    let grand = 0
    let grandDir = 0
    let parent = 0
    let dir = 0
    let n = this.slots[2 * (this.key[0]! >>> 16) + 1]!
    while (n !== 0) {
      const nlen = this.nodes[n * NODE + F_LEN]! & LEN_MASK
      if (nlen > length || this.commonPrefix(n, nlen) < nlen) return false
      if (nlen === length) break
      grand = parent
      grandDir = dir
      parent = n
      dir = this.keyBit(nlen)
      n = this.nodes[n * NODE + F_C0 + dir]!
    }
    if (n === 0) return false
    const nodes = this.nodes
    const b = n * NODE
    if ((nodes[b + F_LEN]! & HAS_ROUTE) === 0) return false
    nodes[b + F_LEN] = length
    this.longCount--
    const c0 = nodes[b + F_C0]!
    const c1 = nodes[b + F_C1]!
    // Invariant: a node without a route has two children, so path compression stays complete.
    if (c0 !== 0 && c1 !== 0) return true
    this.link(parent, dir, c0 | c1)
    this.release(n)
    if (c0 === 0 && c1 === 0 && parent !== 0 && (nodes[parent * NODE + F_LEN]! & HAS_ROUTE) === 0) {
      this.link(grand, grandDir, nodes[parent * NODE + F_C0 + (dir ^ 1)]!)
      this.release(parent)
    }
    return true
  }

  // ---- iteration

  /**
   * Handles of all routes: a negative number is `-heapIndex` of a short prefix, a positive one a trie node.
   * Valid until the next update.
   */
  *handles(): Generator<number, void, undefined> {
    for (let idx = 1; idx < SHORT_SIZE; idx++) if (this.shortPresent[idx] === 1) yield -idx
    const stack: Array<number> = []
    for (let s = 0; s < ROOT_SLOTS; s++) {
      const root = this.slots[2 * s + 1]!
      if (root === 0) continue
      stack.push(root)
      while (stack.length > 0) {
        const n = stack.pop()!
        const b = n * NODE
        if ((this.nodes[b + F_LEN]! & HAS_ROUTE) !== 0) yield n
        const c1 = this.nodes[b + F_C1]!
        const c0 = this.nodes[b + F_C0]!
        if (c1 !== 0) stack.push(c1)
        if (c0 !== 0) stack.push(c0)
      }
    }
  }

  /** Reads a handle back as length, value and key words (into `out`). */
  describe(handle: number, out: Int32Array): { length: number; value: number } {
    if (handle < 0) {
      const idx = -handle
      const length = 31 - Math.clz32(idx)
      out.fill(0)
      out[0] = length === 0 ? 0 : (idx ^ (1 << length)) << (32 - length)
      return { length, value: this.shortValues[idx]! }
    }
    const b = handle * NODE
    for (let w = 0; w < 4; w++) out[w] = this.nodes[b + F_KEY + w]!
    return { length: this.nodes[b + F_LEN]! & LEN_MASK, value: this.nodeValues[handle]! }
  }
}

/** IPv4 longest-prefix-match table: addresses and prefixes are u32 numbers (see Address.ts). */
export class RouteTrie4 {
  private readonly core = new Core()

  /** Number of routes. */
  get size(): number {
    return this.core.size
  }

  stats(): TrieStats {
    return this.core.stats()
  }

  /**
   * Adds `prefix/length -> value`, or replaces the value if that prefix is present (true when added). Host bits
   * beyond `length` are ignored. `value` is a u32.
   */
  insert(prefix: number, length: number, value: number): boolean {
    checkU32("prefix", prefix)
    checkLength(length, 32)
    checkU32("value", value)
    this.setKey(prefix, length)
    return this.core.insert(length, value)
  }

  /** Removes `prefix/length` (host bits ignored); false when it was not present. */
  remove(prefix: number, length: number): boolean {
    checkU32("prefix", prefix)
    checkLength(length, 32)
    this.setKey(prefix, length)
    return this.core.remove(length)
  }

  /** The value of exactly `prefix/length` (host bits ignored), or NO_ROUTE. */
  get(prefix: number, length: number): number {
    checkU32("prefix", prefix)
    checkLength(length, 32)
    this.setKey(prefix, length)
    return this.core.get(length)
  }

  /**
   * Value of the longest prefix containing `addr` (a u32; an int32 with the same bits works too), or NO_ROUTE.
   * Allocation-free (see the module comment for V8's boxing of large numbers across a call that is not inlined).
   */
  lookup(addr: number): number {
    const core = this.core
    const slots = core.slots
    const s = (addr >>> 16) << 1
    let n = slots[s + 1]!
    let hit = 0
    if (n !== 0) {
      const nodes = core.nodes
      do {
        const b = n << 3
        const f = nodes[b]!
        const len = f & LEN_MASK
        // Descendants extend this node's key: once it stops matching, nothing below can match.
        if (((addr ^ nodes[b + F_KEY]!) >>> (32 - len)) !== 0) break
        if (f > LEN_MASK) hit = n
        if (len === 32) break
        n = nodes[b + F_C0 + ((addr >>> (31 - len)) & 1)]!
      } while (n !== 0)
    }
    return hit !== 0 ? core.nodeValues[hit]! : core.shortValues[slots[s]!]!
  }

  clear(): void {
    this.core.clear()
  }

  /** All routes, in no particular order. Do not update the table while iterating. */
  *entries(): IterableIterator<Route4> {
    const words = new Int32Array(4)
    for (const h of this.core.handles()) {
      const { length, value } = this.core.describe(h, words)
      yield { prefix: words[0]! >>> 0, length, value }
    }
  }

  [Symbol.iterator](): IterableIterator<Route4> {
    return this.entries()
  }

  private setKey(prefix: number, length: number): void {
    const key = this.core.key
    key[0] = prefix & mask4(length)
    key[1] = 0
    key[2] = 0
    key[3] = 0
  }
}

/** IPv6 longest-prefix-match table: addresses and prefixes are 16-byte Uint8Arrays (see Address.ts). */
export class RouteTrie6 {
  private readonly core = new Core()
  /** The address being looked up, as four words (lookups are synchronous, so one scratch per table is enough). */
  private readonly addr = new Int32Array(4)

  /** Number of routes. */
  get size(): number {
    return this.core.size
  }

  stats(): TrieStats {
    return this.core.stats()
  }

  /**
   * Adds `prefix/length -> value` (prefix: 16 bytes from `offset`), or replaces the value if that prefix is present
   * (true when added). Host bits beyond `length` are ignored. `value` is a u32 (the IPv4 gateway for 6in4).
   */
  insert(prefix: Uint8Array, length: number, value: number, offset = 0): boolean {
    checkLength(length, 128)
    checkU32("value", value)
    this.setKey(prefix, offset, length)
    return this.core.insert(length, value)
  }

  /** Removes `prefix/length` (host bits ignored); false when it was not present. */
  remove(prefix: Uint8Array, length: number, offset = 0): boolean {
    checkLength(length, 128)
    this.setKey(prefix, offset, length)
    return this.core.remove(length)
  }

  /** The value of exactly `prefix/length` (host bits ignored), or NO_ROUTE. */
  get(prefix: Uint8Array, length: number, offset = 0): number {
    checkLength(length, 128)
    this.setKey(prefix, offset, length)
    return this.core.get(length)
  }

  /**
   * Value of the longest prefix containing the 16-byte address at `bytes[offset]` (e.g. an IPv6 header's
   * destination, offset 24), or NO_ROUTE. Allocation-free; the caller guarantees the 16 bytes are there.
   */
  lookup(bytes: Uint8Array, offset: number): number {
    const core = this.core
    const slots = core.slots
    const s = (bytes[offset]! << 9) | (bytes[offset + 1]! << 1)
    let n = slots[s + 1]!
    let hit = 0
    if (n !== 0) {
      const a = this.addr
      for (let w = 0; w < 4; w++) a[w] = readWord(bytes, offset + 4 * w)
      const nodes = core.nodes
      do {
        const b = n << 3
        const f = nodes[b]!
        const len = f & LEN_MASK
        // Whole words first, then the partial one; a mismatch ends the walk (descendants extend this key).
        const full = len >>> 5
        let w = 0
        while (w < full && a[w] === nodes[b + F_KEY + w]) w++
        if (w < full) break
        const rest = len & 31
        if (rest !== 0 && ((a[full]! ^ nodes[b + F_KEY + full]!) >>> (32 - rest)) !== 0) break
        if (f > LEN_MASK) hit = n
        if (len === 128) break
        n = nodes[b + F_C0 + ((a[full]! >>> (31 - rest)) & 1)]!
      } while (n !== 0)
    }
    return hit !== 0 ? core.nodeValues[hit]! : core.shortValues[slots[s]!]!
  }

  clear(): void {
    this.core.clear()
  }

  /** All routes, in no particular order. Do not update the table while iterating. */
  *entries(): IterableIterator<Route6> {
    const words = new Int32Array(4)
    for (const h of this.core.handles()) {
      const { length, value } = this.core.describe(h, words)
      const prefix = new Uint8Array(16)
      for (let i = 0; i < 16; i++) prefix[i] = (words[i >>> 2]! >>> (24 - 8 * (i & 3))) & 255
      yield { prefix, length, value }
    }
  }

  [Symbol.iterator](): IterableIterator<Route6> {
    return this.entries()
  }

  private setKey(prefix: Uint8Array, offset: number, length: number): void {
    if (!Number.isInteger(offset) || offset < 0 || offset + 16 > prefix.length) {
      throw new RangeError(`prefix needs 16 bytes at offset ${offset}, has ${prefix.length}`)
    }
    const key = this.core.key
    for (let w = 0; w < 4; w++) {
      const o = offset + 4 * w
      key[w] = (prefix[o]! << 24) | (prefix[o + 1]! << 16) | (prefix[o + 2]! << 8) | prefix[o + 3]!
    }
    this.core.maskKey(length)
  }
}
