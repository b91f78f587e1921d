/**
 * A bump allocator over one large buffer for the packets a batch builds (GSO segments, GRO super-packets): one
 * buffer per pipeline, reset once per batch, so building packets allocates only the views.
 */

/** Every reservation starts at a multiple of 8 bytes, so a header behind 12 or 20 bytes stays 4-byte aligned. */
const ALIGN = 8

export interface Arena {
  readonly bytes: Uint8Array
  /** Bytes reserved since the last `reset`. */
  used: number
}

/** An arena of `size` bytes in a buffer of its own (V8 keeps it off-heap and never moves it). */
export const make = (size: number): Arena => ({ bytes: new Uint8Array(new ArrayBuffer(size)), used: 0 })

/** Forgets every reservation: views handed out before become invalid (their bytes will be reused). */
export const reset = (arena: Arena): void => {
  arena.used = 0
}

/**
 * A view of `length` bytes with `before` writable bytes in front of it in the same buffer (headroom for a header the
 * next stage writes in place), valid until the next `reset`. The reserved region starts 8-byte aligned. When the
 * arena is full the view gets a buffer of its own, so a batch larger than planned costs allocations, never packets.
 */
export const take = (arena: Arena, before: number, length: number): Uint8Array => {
  const start = arena.used
  const end = start + before + length
  const bytes = arena.bytes
  if (end <= bytes.length) {
    arena.used = Math.ceil(end / ALIGN) * ALIGN
    return new Uint8Array(bytes.buffer, bytes.byteOffset + start + before, length)
  }
  return new Uint8Array(new ArrayBuffer(before + length), before, length)
}
