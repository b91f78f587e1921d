import { Context } from "effect"

/** What the ICMP builder needs to know about this host's addresses. */
export interface AddressSnapshot {
  /** First IPv4 address on the tunnel device, 0 if none. */
  readonly tun4: number
  /** An IPv6 address on the tunnel device (global preferred over link-local), null if none. */
  readonly tun6: Uint8Array | null
  /** Every IPv4 address of this host, on any interface. */
  readonly local4: ReadonlySet<number>
}

/** Follows the addresses of this host (rtnetlink in the Live layer). */
export class HostAddresses extends Context.Tag("kiwitun/HostAddresses")<HostAddresses, {
  /** The latest snapshot, read synchronously by the data path (once per chunk, inside its one Effect). */
  readonly latest: () => AddressSnapshot
}>() {}
