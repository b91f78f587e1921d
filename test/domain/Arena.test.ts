import { describe, expect, it } from "@effect/vitest"
import * as Arena from "../../src/domain/Arena.js"

describe("Arena", () => {
  it("hands out aligned views with writable bytes in front, then reuses the space after a reset", () => {
    const arena = Arena.make(256)
    const a = Arena.take(arena, 20, 13)
    const b = Arena.take(arena, 12, 5)
    expect(a.buffer).toBe(arena.bytes.buffer)
    expect([a.byteOffset, a.length]).toEqual([20, 13])
    // 20 + 13 = 33 bytes rounded up to 40: the next reservation starts 8-byte aligned.
    expect(b.byteOffset).toBe(40 + 12)
    expect(arena.used).toBe(64)
    Arena.reset(arena)
    expect(Arena.take(arena, 20, 1).byteOffset).toBe(20)
  })

  it("gives a view a buffer of its own, with the bytes in front, when the arena is full", () => {
    const arena = Arena.make(64)
    Arena.take(arena, 0, 40)
    const big = Arena.take(arena, 20, 100)
    expect(big.buffer).not.toBe(arena.bytes.buffer)
    expect([big.byteOffset, big.length, big.buffer.byteLength]).toEqual([20, 100, 120])
    expect(arena.used).toBe(40)
    // A smaller reservation that still fits comes from the arena again.
    expect(Arena.take(arena, 0, 24).buffer).toBe(arena.bytes.buffer)
  })
})
