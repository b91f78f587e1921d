/** Routes held in memory, replaced with `set`; longest-prefix match by a linear scan (tests only). */
import { Effect, Layer, Ref } from "effect"
import { parseCidr } from "../domain/Address.js"
import { NO_ROUTE, RouteTable } from "../services/RouteTable.js"

export interface TestRoute {
  /** "a.b.c.d/n" or "x::/n" */
  readonly prefix: string
  /** IPv4 gateway (u32) for both families, 0 = route without gateway */
  readonly gateway: number
}

interface Compiled {
  readonly family: 4 | 6
  readonly addr: Uint8Array
  readonly len: number
  readonly gateway: number
}

const matches = (r: Compiled, bytes: Uint8Array, offset: number): boolean => {
  for (let bit = 0; bit < r.len; bit++) {
    const byte = bit >>> 3
    const mask = 0x80 >>> (bit & 7)
    if ((r.addr[byte]! & mask) !== (bytes[offset + byte]! & mask)) return false
  }
  return true
}

const lookup = (table: ReadonlyArray<Compiled>, family: 4 | 6, bytes: Uint8Array, offset: number): number => {
  let best: Compiled | undefined
  for (const r of table) {
    if (r.family === family && matches(r, bytes, offset) && (best === undefined || r.len > best.len)) best = r
  }
  return best === undefined ? NO_ROUTE : best.gateway
}

export interface RouteTableTestHandle {
  readonly service: RouteTable["Type"]
  readonly set: (routes: ReadonlyArray<TestRoute>) => Effect.Effect<void>
}

const compile = (routes: ReadonlyArray<TestRoute>): Array<Compiled> =>
  routes.flatMap((r) => {
    const c = parseCidr(r.prefix)
    return c === undefined ? [] : [{ family: c.family, addr: c.addr, len: c.prefix, gateway: r.gateway }]
  })

export const make = (routes: ReadonlyArray<TestRoute> = []): Effect.Effect<RouteTableTestHandle> =>
  Effect.map(Ref.make(compile(routes)), (ref) => {
    // Lookups are synchronous on the data path: read the current table without an Effect.
    let table = compile(routes)
    const v4 = new Uint8Array(4)
    return {
      service: {
        lookup4: (dst) => {
          v4[0] = dst >>> 24
          v4[1] = dst >>> 16
          v4[2] = dst >>> 8
          v4[3] = dst
          return lookup(table, 4, v4, 0)
        },
        lookup6: (bytes, offset) => lookup(table, 6, bytes, offset),
        size: () => ({ v4: table.filter((r) => r.family === 4).length, v6: table.filter((r) => r.family === 6).length })
      },
      set: (next) =>
        Ref.set(ref, compile(next)).pipe(Effect.tap(() => Effect.sync(() => (table = compile(next)))))
    }
  })

export const layer = (handle: RouteTableTestHandle): Layer.Layer<RouteTable> =>
  Layer.succeed(RouteTable, handle.service)

/** No routes at all (fixed-remote tunnels never look). */
export const empty: Layer.Layer<RouteTable> = Layer.succeed(RouteTable, {
  lookup4: () => NO_ROUTE,
  lookup6: () => NO_ROUTE,
  size: () => ({ v4: 0, v6: 0 })
})

