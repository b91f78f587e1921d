/**
 * What `kiwitun status` shows: the report a running daemon sends over its control socket (one JSON object), its
 * schema (the client decodes what it reads), the table a person reads, and the one-line summary given to the
 * service manager as STATUS=.
 */
import { Schema } from "effect"

const Count = Schema.Number.pipe(Schema.int(), Schema.nonNegative())

export const Counters = Schema.Struct({
  tunRxPackets: Count,
  encapPackets: Count,
  encapBytes: Count,
  netRxPackets: Count,
  decapPackets: Count,
  decapBytes: Count,
  icmpSent: Count,
  /** only the reasons with a non-zero count */
  drops: Schema.Record({ key: Schema.String, value: Count })
})

export const StatusReport = Schema.Struct({
  version: Schema.String,
  pid: Schema.Number,
  ifname: Schema.String,
  ifindex: Schema.Number,
  /** "4in4", "6in4" or "4in4+6in4" */
  mode: Schema.String,
  mtu: Schema.Number,
  /** the fixed remote (address or host name) or "dynamic" */
  remote: Schema.String,
  /** the `-l` address, or "" when the kernel chooses */
  local: Schema.String,
  /** the user the daemon runs as, and its uid */
  user: Schema.String,
  uid: Schema.Number,
  /** ISO 8601 */
  startedAt: Schema.String,
  uptimeSeconds: Schema.Number,
  /** the daemon's resident memory and the part of it that is the JavaScript heap in use, in bytes */
  memory: Schema.Struct({ rssBytes: Count, heapUsedBytes: Count }),
  counters: Counters
})
export type StatusReport = typeof StatusReport.Type

/** The control socket's reply: the report as one line of JSON. */
export const StatusReportJson = Schema.parseJson(StatusReport)

/** 1234567 -> "1,234,567" (independent of the locale, so scripts and tests see the same text). */
export const formatCount = (n: number): string => {
  const digits = String(Math.trunc(n))
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",")
}

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"] as const

/** Bytes in binary units with one decimal: "512 B", "1.2 KiB", "3.0 GiB". */
export const formatBytes = (n: number): string => {
  if (n < 1024) return `${n} B`
  let value = n / 1024
  let unit = 0
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  // 1023.96 KiB would print as "1024.0 KiB": show it as the next unit instead
  if (value >= 1023.95 && unit < UNITS.length - 1) {
    value /= 1024
    unit++
  }
  return `${value.toFixed(1)} ${UNITS[unit]}`
}

const pad2 = (n: number) => String(n).padStart(2, "0")

/** "45s", "3m 05s", "2h 03m 04s", "3d 02h 03m". */
export const formatUptime = (seconds: number): string => {
  const s = Math.max(0, Math.floor(seconds))
  const d = Math.floor(s / 86400)
  const h = Math.floor((s % 86400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (d > 0) return `${d}d ${pad2(h)}h ${pad2(m)}m`
  if (h > 0) return `${h}h ${pad2(m)}m ${pad2(sec)}s`
  if (m > 0) return `${m}m ${pad2(sec)}s`
  return `${sec}s`
}

const totalDrops = (drops: Readonly<Record<string, number>>): number =>
  Object.values(drops).reduce((a, b) => a + b, 0)

/** Rows of cells -> lines, the first column left-aligned, the others right-aligned. */
const columns = (rows: ReadonlyArray<ReadonlyArray<string>>): Array<string> => {
  const widths: Array<number> = []
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)))
  return rows.map((row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("   ").trimEnd()
  )
}

/** The table `kiwitun status` prints. */
export const formatStatus = (r: StatusReport): string => {
  const c = r.counters
  const info: ReadonlyArray<readonly [string, string]> = [
    ["interface", `${r.ifname} (index ${r.ifindex}), ${r.mode}, MTU ${r.mtu}`],
    ["remote", r.remote],
    ["local", r.local === "" ? "chosen by the kernel" : r.local],
    ["user", `${r.user} (uid ${r.uid})`],
    ["uptime", `${formatUptime(r.uptimeSeconds)} (since ${r.startedAt})`],
    ["memory", `${formatBytes(r.memory.rssBytes)} resident, ${formatBytes(r.memory.heapUsedBytes)} JavaScript heap`]
  ]
  const keyWidth = Math.max(...info.map(([k]) => k.length))
  const lines = [`kiwitun ${r.version}, pid ${r.pid}`]
  for (const [k, v] of info) lines.push(`${k.padEnd(keyWidth)}   ${v}`)
  lines.push("")
  lines.push(...columns([
    ["direction", "packets in", "packets out", "bytes out"],
    ["tun -> network", formatCount(c.tunRxPackets), formatCount(c.encapPackets), formatBytes(c.encapBytes)],
    ["network -> tun", formatCount(c.netRxPackets), formatCount(c.decapPackets), formatBytes(c.decapBytes)],
    ["ICMP errors sent", "", formatCount(c.icmpSent), ""]
  ]))
  lines.push("")
  const drops = Object.entries(c.drops).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
  if (drops.length === 0) lines.push("drops   none")
  else {
    lines.push(...columns([
      ["drops", formatCount(totalDrops(c.drops))],
      ...drops.map(([name, n]) => [`  ${name}`, formatCount(n)])
    ]))
  }
  return lines.join("\n") + "\n"
}

/** One line for the service manager (STATUS=, shown by `systemctl status`). */
export const summaryLine = (r: Pick<StatusReport, "ifname" | "remote" | "counters">): string => {
  const c = r.counters
  const drops = totalDrops(c.drops)
  return `${r.ifname} up, remote ${r.remote}; ` +
    `tun->net ${formatCount(c.encapPackets)} pkts ${formatBytes(c.encapBytes)}, ` +
    `net->tun ${formatCount(c.decapPackets)} pkts ${formatBytes(c.decapBytes)}, ` +
    `${formatCount(drops)} dropped, ${formatCount(c.icmpSent)} ICMP sent`
}
