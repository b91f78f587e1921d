import type { Chunk, Effect } from "effect"
import { Context, Data } from "effect"

export class TunError extends Data.TaggedError("TunError")<{
  readonly op: "open" | "configure" | "read" | "write" | "close"
  readonly errno: number
  readonly message: string
}> {}

/** An inner address assigned to the device: `family` 4 or 6, `addr` 4 or 16 bytes. */
export interface InterfaceAddress {
  readonly family: 4 | 6
  readonly addr: Uint8Array
  readonly prefix: number
}

export interface TunOptions {
  /** Requested name (at most 15 bytes); undefined = the kernel picks tunN. */
  readonly name: string | undefined
  readonly mtu: number
  /** Inner addresses to assign after the device is created. */
  readonly addresses: ReadonlyArray<InterfaceAddress>
  /** Device transmit queue length. */
  readonly txQueueLen: number
  /** Packets per read batch. */
  readonly batch: number
  /**
   * Ask for TUN offloads (IFF_VNET_HDR + TUNSETOFFLOAD: checksum, TCP and, where the kernel has it, UDP segmentation
   * offload), so the kernel hands over TCP (and UDP) super-packets of up to 64 KB and accepts them. Falls back to TCP
   * only on a kernel without UDP segmentation offload, and to plain packets when the kernel refuses offloads.
   * Default: off.
   */
  readonly offload?: boolean | undefined
}

/**
 * The TUN device (IFF_TUN | IFF_NO_PI). Packets handed out by `readBatch` are views into a ring the device
 * owns; they stay valid until the next `readBatch`, and each has `HEADROOM` (Encap.ts) writable bytes in
 * front of it in the same ArrayBuffer, so encapsulation can write the outer header in place.
 */
export class TunDevice extends Context.Tag("kiwitun/TunDevice")<TunDevice, {
  readonly name: string
  readonly ifindex: number
  readonly mtu: number
  /**
   * True when offloads are on. Then every packet `readBatch` hands out starts with a 12-byte virtio_net_hdr (with at
   * least 8 writable bytes in front of it, so the packet after the header has HEADROOM), and every packet given to
   * `writeBatch` must start with one too.
   */
  readonly offload: boolean
  /**
   * True when UDP segmentation offload is on too (TUN_F_USO4 | TUN_F_USO6, Linux 6.2+; always false without
   * `offload`). Then `readBatch` may hand out UDP super-packets (gso_type UDP_L4, from local senders using
   * UDP_SEGMENT), and the kernel accepts them in `writeBatch`, so received UDP datagrams may be coalesced.
   */
  readonly offloadUdp: boolean
  /** Waits until at least one packet is readable, then drains up to `batch` packets. */
  readonly readBatch: Effect.Effect<Chunk.Chunk<Uint8Array>, TunError>
  /** Writes every packet; a packet the kernel refuses is counted in the result, not an error. */
  readonly writeBatch: (packets: Chunk.Chunk<Uint8Array>) => Effect.Effect<WriteReport, TunError>
}>() {}

export interface WriteReport {
  readonly written: number
  readonly failed: number
  /** errno of the last failure, 0 if none */
  readonly lastErrno: number
}
