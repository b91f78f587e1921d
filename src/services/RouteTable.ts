import { Context } from "effect"

/** Result of a route lookup: the gateway (u32, > 0), NO_GATEWAY, or NO_ROUTE. */
export const NO_ROUTE = -1
export const NO_GATEWAY = 0

/**
 * The routes through this tunnel's device (dynamic mode). Lookups are synchronous and allocation-free: they run per
 * packet on the data path. The Live layer keeps the table in step with the kernel's.
 */
export class RouteTable extends Context.Tag("kiwitun/RouteTable")<RouteTable, {
  /** IPv4 inner destination (u32) -> IPv4 gateway, NO_GATEWAY or NO_ROUTE */
  readonly lookup4: (dst: number) => number
  /** IPv6 inner destination (16 bytes at `offset`) -> IPv4 gateway (from ::ffff:a.b.c.d or ::a.b.c.d), ... */
  readonly lookup6: (bytes: Uint8Array, offset: number) => number
  /** Number of routes mirrored (IPv4, IPv6). */
  readonly size: () => { readonly v4: number; readonly v6: number }
}>() {}
