/**
 * Decapsulation (network -> TUN), behaviour.md "Decapsulation" steps 1-6.
 * Pure, synchronous: one call per chunk.
 */

export interface DecapContext {
  readonly v4: boolean
  readonly v6: boolean
  /** Fixed remote (u32) or 0 = accept any outer source (dynamic mode). */
  readonly remote: number
  /** `-l` (u32) or 0 = accept any outer destination. */
  readonly local: number
}

export interface DecapOut {
  /** Inner packets to write to the TUN device (views into the received frames). */
  readonly packets: Array<Uint8Array>
  /** Drop counts by `Drop` reason, added to. */
  readonly drops: Uint32Array
}
