import { describe, expect, it } from "@effect/vitest"
import { guarded, reassemble, v4Packet } from "./helpers.js"

// The property tests rely on these two helpers to see out-of-bounds access and broken fragmentation.
describe("test helpers", () => {
  it("guarded throws on reads and writes outside the view, also through sub-views", () => {
    const backing = new Uint8Array(16)
    const g = guarded(backing.subarray(4, 8))
    expect(g[3]).toBe(0)
    expect(g.length).toBe(4)
    expect(() => g[4]).toThrow(RangeError)
    expect(() => g[-1]).toThrow(RangeError)
    expect(() => {
      g[4] = 1
    }).toThrow(RangeError)
    expect(() => g.subarray(1, 3)[2]).toThrow(RangeError)
    expect(new Uint8Array(g.buffer, g.byteOffset - 4, 8).length).toBe(8)
  })

  it("reassemble rejects missing, overlapping and mismatched fragments", () => {
    const a = v4Packet({ id: 7, mf: true, payload: new Uint8Array(8).fill(1) })
    const b = v4Packet({ id: 7, offset8: 1, payload: new Uint8Array(4).fill(2) })
    expect(reassemble([b, a])).toEqual(Uint8Array.from([1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]))
    expect(reassemble([a])).toBeUndefined()
    expect(reassemble([b])).toBeUndefined()
    expect(reassemble([a, a, b])).toBeUndefined()
    expect(reassemble([a, v4Packet({ id: 8, offset8: 1, payload: new Uint8Array(4) })])).toBeUndefined()
  })
})
