/**
 * Routes through the tunnel device, mirrored from the kernel. Not wired to rtnetlink yet: dynamic mode has an
 * empty table, so every packet is answered with Destination Unreachable.
 */
import { Layer } from "effect"
import type { RouteTable } from "../services/RouteTable.js"
import type { TunDevice } from "../services/TunDevice.js"
import * as RouteTableTest from "./RouteTableTest.js"

export interface RouteTableOptions {
  readonly table: number | undefined
}

export const layer = (_opts: RouteTableOptions): Layer.Layer<RouteTable, never, TunDevice> => RouteTableTest.empty
