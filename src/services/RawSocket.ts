import type { Chunk, Effect, Scope } from "effect"
import { Context, Data } from "effect"

export class RawSocketError extends Data.TaggedError("RawSocketError")<{
  readonly op: "open" | "configure" | "receive" | "send" | "close"
  readonly proto: number
  readonly errno: number
  readonly message: string
}> {}

/** 4 = IPIP (4in4), 41 = IPv6 in IPv4 (6in4). */
export type TunnelProto = 4 | 41

/** What happened to a batch of outer packets handed to `sendBatch`. */
export interface SendReport {
  readonly sent: number
  /** Packets refused by the kernel, by index in the batch. */
  readonly failures: ReadonlyArray<SendFailure>
}

export interface SendFailure {
  readonly index: number
  readonly errno: number
  /** For EMSGSIZE: the MTU the kernel reported for the route (0 if unknown). */
  readonly mtu: number
}

/**
 * One raw IPv4 socket for one protocol. Received packets include the outer IPv4 header and are views valid until
 * the next `receiveBatch`. Sent packets are complete outer IPv4 packets (IP_HDRINCL): the destination is read from
 * the header; a zero source, total length, checksum or ID is filled in by the kernel.
 */
export interface RawSocket {
  readonly proto: TunnelProto
  /** Waits until at least one packet is readable, then drains up to one batch. */
  readonly receiveBatch: Effect.Effect<Chunk.Chunk<Uint8Array>, RawSocketError>
  readonly sendBatch: (frames: ReadonlyArray<Uint8Array>) => Effect.Effect<SendReport, RawSocketError>
  /**
   * Packets the kernel delivered larger than a receive slot (MSG_TRUNC), since the last call. Synchronous: the data
   * path reads it inside its one Effect per chunk.
   */
  readonly takeTruncated: () => number
}

/** Opens raw sockets; each is closed when its scope closes. */
export class RawSockets extends Context.Tag("kiwitun/RawSockets")<RawSockets, {
  readonly open: (proto: TunnelProto) => Effect.Effect<RawSocket, RawSocketError, Scope.Scope>
}>() {}
