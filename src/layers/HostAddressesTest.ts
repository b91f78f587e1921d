/** Host addresses held in memory; `set` replaces the snapshot. */
import { Effect, Layer } from "effect"
import type { AddressSnapshot } from "../services/HostAddresses.js"
import { HostAddresses } from "../services/HostAddresses.js"

export const empty: AddressSnapshot = { tun4: 0, tun6: null, local4: new Set() }

export interface HostAddressesTestHandle {
  readonly service: HostAddresses["Type"]
  readonly set: (snapshot: AddressSnapshot) => Effect.Effect<void>
}

export const make = (initial: AddressSnapshot = empty): Effect.Effect<HostAddressesTestHandle> =>
  Effect.sync(() => {
    let snapshot = initial
    return {
      service: { latest: () => snapshot },
      set: (s) =>
        Effect.sync(() => {
          snapshot = s
        })
    }
  })

export const layer = (snapshot: AddressSnapshot = empty): Layer.Layer<HostAddresses> =>
  Layer.succeed(HostAddresses, { latest: () => snapshot })
