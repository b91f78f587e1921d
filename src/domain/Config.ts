/**
 * The daemon's configuration: what the command line (or a host application) gives, validated in one place before
 * anything is created. `decode` never throws: it returns the config or a one-line reason.
 */
import { Data, Either } from "effect"
import type { Cidr } from "./Address.js"
import { isUnicast4, parseCidr, parseIpv4 } from "./Address.js"

export class ConfigError extends Data.TaggedError("ConfigError")<{ readonly message: string }> {}

export type Remote =
  | { readonly _tag: "Dynamic" }
  | { readonly _tag: "Address"; readonly addr: number }
  | { readonly _tag: "Host"; readonly name: string }

export interface TunnelConfig {
  readonly v4: boolean
  readonly v6: boolean
  readonly remote: Remote
  /** `-l` as u32, 0 = kernel chooses */
  readonly local: number
  /** 1..255, or 0 = inherit the inner TTL / hop limit */
  readonly ttl: number
  readonly ifname: string | undefined
  readonly refreshMinutes: number
  readonly mtu: number
  readonly addresses: ReadonlyArray<Cidr>
  /** syslog level 0 (nothing) .. 7 (debug) */
  readonly logLevel: number
  /** routing table whose routes count in dynamic mode, undefined = every table */
  readonly table: number | undefined
  readonly txQueueLen: number
  readonly batch: number
  readonly icmpRatePerSecond: number
  readonly icmpBurst: number
  /** TUN offloads (TSO/checksum from the kernel, coalesced writes back): on unless `--no-offload` */
  readonly offload: boolean
}

/** Raw values as they come from a command line; undefined = not given. */
export interface RawConfig {
  readonly v4?: boolean | undefined
  readonly v6?: boolean | undefined
  readonly remote?: string | undefined
  readonly local?: string | undefined
  readonly ttl?: string | undefined
  readonly ifname?: string | undefined
  readonly refresh?: number | undefined
  readonly mtu?: number | undefined
  readonly addresses?: ReadonlyArray<string> | undefined
  readonly logLevel?: number | undefined
  readonly verbose?: boolean | undefined
  readonly table?: number | undefined
  readonly txQueueLen?: number | undefined
  readonly icmpRate?: number | undefined
  readonly icmpBurst?: number | undefined
  readonly noOffload?: boolean | undefined
}

export const DEFAULT_MTU = 1480
export const DEFAULT_TTL = 64
export const DEFAULT_REFRESH_MINUTES = 60
export const DEFAULT_LOG_LEVEL = 6
export const DEFAULT_TX_QUEUE_LEN = 4000
export const DEFAULT_BATCH = 64
export const DEFAULT_ICMP_RATE = 100
export const DEFAULT_ICMP_BURST = 100
/** IFNAMSIZ - 1 */
export const MAX_IFNAME_BYTES = 15

const LABEL = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/

/** RFC 1123 host name (letters, digits, hyphens; dot-separated labels), not all-numeric. */
export const isHostname = (name: string): boolean => {
  const trimmed = name.endsWith(".") ? name.slice(0, -1) : name
  if (trimmed.length === 0 || trimmed.length > 253) return false
  const labels = trimmed.split(".")
  if (!labels.every((l) => LABEL.test(l))) return false
  // a dotted string of digits that is not a valid IPv4 address is a typo, not a name
  return !/^[0-9.]+$/.test(trimmed)
}

/** Interface names the kernel accepts: 1..15 bytes, no '/', ':' or white space, not "." or "..". */
export const isIfname = (name: string): boolean =>
  Buffer.byteLength(name) >= 1 && Buffer.byteLength(name) <= MAX_IFNAME_BYTES && !/[/:\s]/.test(name) &&
  name !== "." && name !== ".."

const int = (v: number | undefined, name: string, min: number, max: number, dflt: number): number | string => {
  if (v === undefined) return dflt
  if (!Number.isInteger(v) || v < min || v > max) return `${name} must be an integer from ${min} to ${max}, got ${v}`
  return v
}

const ESCAPES: Readonly<Record<string, string>> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }

/** A given value echoed in a reason, control characters escaped: the reason stays one line whatever was given. */
const shown = (text: string): string =>
  text.replace(/[\u0000-\u001f\u007f]/g, (c) => ESCAPES[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`)

export const decode = (raw: RawConfig): Either.Either<TunnelConfig, ConfigError> => {
  const fail = (message: string) => Either.left(new ConfigError({ message }))
  const v4 = raw.v4 === true
  const v6 = raw.v6 === true
  if (!v4 && !v6) return fail("select at least one tunnelling mode: -4 (4in4) and/or -6 (6in4)")

  let remote: Remote = { _tag: "Dynamic" }
  if (raw.remote !== undefined) {
    const addr = parseIpv4(raw.remote)
    if (addr !== undefined) {
      if (!isUnicast4(addr)) {
        return fail(`--remote must be a unicast IPv4 address, got ${shown(raw.remote)}`)
      }
      remote = { _tag: "Address", addr }
    } else if (isHostname(raw.remote)) remote = { _tag: "Host", name: raw.remote }
    else return fail(`--remote must be an IPv4 address or a host name, got '${shown(raw.remote)}'`)
  }

  let local = 0
  if (raw.local !== undefined) {
    const addr = parseIpv4(raw.local)
    if (addr === undefined || !isUnicast4(addr)) {
      return fail(`--local must be a unicast IPv4 address, got '${shown(raw.local)}'`)
    }
    local = addr
  }

  let ttl = DEFAULT_TTL
  if (raw.ttl !== undefined) {
    if (raw.ttl === "inherit") ttl = 0
    else if (/^[0-9]{1,3}$/.test(raw.ttl) && Number(raw.ttl) >= 1 && Number(raw.ttl) <= 255) ttl = Number(raw.ttl)
    else return fail(`--ttl must be 1 to 255 or 'inherit', got '${shown(raw.ttl)}'`)
  }

  if (raw.ifname !== undefined && !isIfname(raw.ifname)) {
    return fail(
      `--ifname must be 1 to ${MAX_IFNAME_BYTES} bytes without '/', ':' or spaces, got '${shown(raw.ifname)}'`
    )
  }

  const refresh = int(raw.refresh, "--refresh (minutes)", 1, 525600, DEFAULT_REFRESH_MINUTES)
  if (typeof refresh === "string") return fail(refresh)
  const mtu = int(raw.mtu, "--mtu", v6 ? 1280 : 68, 65515, DEFAULT_MTU)
  if (typeof mtu === "string") return fail(v6 && typeof raw.mtu === "number" ? `${mtu} (6in4 needs 1280)` : mtu)
  const table = raw.table === undefined ? undefined : int(raw.table, "--table", 1, 0xffffffff, 0)
  if (typeof table === "string") return fail(table)
  const txQueueLen = int(raw.txQueueLen, "--txqueuelen", 1, 100000, DEFAULT_TX_QUEUE_LEN)
  if (typeof txQueueLen === "string") return fail(txQueueLen)
  const icmpRate = int(raw.icmpRate, "--icmp-rate", 0, 1000000, DEFAULT_ICMP_RATE)
  if (typeof icmpRate === "string") return fail(icmpRate)
  const icmpBurst = int(raw.icmpBurst, "--icmp-burst", 1, 1000000, DEFAULT_ICMP_BURST)
  if (typeof icmpBurst === "string") return fail(icmpBurst)

  // Like the C original, values above 7 are clipped to 7; -v means 7.
  let logLevel = DEFAULT_LOG_LEVEL
  if (raw.logLevel !== undefined) {
    if (!Number.isInteger(raw.logLevel) || raw.logLevel < 0) {
      return fail(`--log-level must be an integer from 0 to 7, got ${raw.logLevel}`)
    }
    logLevel = Math.min(7, raw.logLevel)
  }
  if (raw.verbose === true) logLevel = 7

  const addresses: Array<Cidr> = []
  for (const text of raw.addresses ?? []) {
    const cidr = parseCidr(text)
    if (cidr === undefined) {
      return fail(`--address must be an IPv4 or IPv6 address with a prefix length, got '${shown(text)}'`)
    }
    addresses.push(cidr)
  }

  return Either.right({
    v4,
    v6,
    remote,
    local,
    ttl,
    ifname: raw.ifname,
    refreshMinutes: refresh,
    mtu,
    addresses,
    logLevel,
    table,
    txQueueLen,
    batch: DEFAULT_BATCH,
    icmpRatePerSecond: icmpRate,
    icmpBurst,
    offload: raw.noOffload !== true
  })
}
