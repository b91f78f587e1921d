/**
 * Library entry: the tunnel as a Layer an Effect application composes with its own.
 *
 * ```ts
 * import { Kiwitun } from "kiwitun"
 * const cfg = Kiwitun.decodeConfig({ v4: true, remote: "192.0.2.2", addresses: ["198.51.100.1/30"] })
 * ```
 */
import { Layer } from "effect"
import type { TunnelConfig } from "./domain/Config.js"
import * as HostAddressesLive from "./layers/HostAddressesLive.js"
import * as RawSocketsLive from "./layers/RawSocketsLive.js"
import * as ResolverLive from "./layers/ResolverLive.js"
import * as RouteTableLive from "./layers/RouteTableLive.js"
import * as TunDeviceLive from "./layers/TunDeviceLive.js"
import type { TunError, TunOptions } from "./services/TunDevice.js"
import type { Tunnel, TunnelError } from "./Tunnel.js"
import { layerWithoutDependencies } from "./Tunnel.js"

export { ConfigError, decode as decodeConfig } from "./domain/Config.js"
export type { RawConfig, TunnelConfig } from "./domain/Config.js"
export { layerWithoutDependencies, Tunnel, TunnelError } from "./Tunnel.js"

/** The TUN device options a config implies. */
export const tunOptions = (cfg: TunnelConfig): TunOptions => ({
  name: cfg.ifname,
  mtu: cfg.mtu,
  addresses: cfg.addresses,
  txQueueLen: cfg.txQueueLen,
  batch: cfg.batch,
  offload: cfg.offload
})

/**
 * The tunnel with the real kernel underneath (TUN device, raw sockets, rtnetlink, the system resolver). Building it
 * creates the device; releasing it removes the device and closes every socket.
 */
export const layer = (cfg: TunnelConfig): Layer.Layer<Tunnel, TunnelError | TunError> => {
  const tun = TunDeviceLive.layer(tunOptions(cfg))
  const deps = Layer.mergeAll(
    RawSocketsLive.layer,
    ResolverLive.layer,
    HostAddressesLive.layer,
    RouteTableLive.layer({ table: cfg.table })
  ).pipe(Layer.provideMerge(tun))
  return layerWithoutDependencies(cfg).pipe(Layer.provide(deps))
}
