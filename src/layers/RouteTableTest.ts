/** Routes held in memory, replaced with `set`, looked up with the same tries as the Live mirror. */
import { Effect, Layer } from "effect"
import { ipv4FromBytes, parseCidr } from "../domain/Address.js"
import { RouteTrie4, RouteTrie6 } from "../domain/RouteTrie.js"
import { NO_ROUTE, RouteTable } from "../services/RouteTable.js"

export interface TestRoute {
  /** "a.b.c.d/n" or "x::/n" */
  readonly prefix: string
  /** IPv4 gateway (u32) for both families, 0 = route without gateway */
  readonly gateway: number
}

export interface RouteTableTestHandle {
  readonly service: RouteTable["Type"]
  /** Replaces every route (prefixes that do not parse are left out). */
  readonly set: (routes: ReadonlyArray<TestRoute>) => Effect.Effect<void>
}

export const make = (routes: ReadonlyArray<TestRoute> = []): Effect.Effect<RouteTableTestHandle> =>
  Effect.sync(() => {
    const v4 = new RouteTrie4()
    const v6 = new RouteTrie6()
    const load = (next: ReadonlyArray<TestRoute>) => {
      v4.clear()
      v6.clear()
      for (const r of next) {
        const c = parseCidr(r.prefix)
        if (c === undefined) continue
        if (c.family === 4) v4.insert(ipv4FromBytes(c.addr), c.prefix, r.gateway)
        else v6.insert(c.addr, c.prefix, r.gateway)
      }
    }
    load(routes)
    return {
      service: {
        lookup4: (dst) => v4.lookup(dst),
        lookup6: (bytes, offset) => v6.lookup(bytes, offset),
        size: () => ({ v4: v4.size, v6: v6.size })
      },
      set: (next) => Effect.sync(() => load(next))
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
