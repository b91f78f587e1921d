/**
 * Effect metrics of a tunnel. Updated once per chunk with plain numbers counted by the packet code, never per
 * packet. Every metric carries the tunnel's interface name as a tag, so two tunnels in one process stay apart.
 */
import { Metric } from "effect"
import { DROP_COUNT, dropName } from "./domain/Drops.js"

type Counter = Metric.Metric.Counter<number>

export interface TunnelMetrics {
  readonly tunRxPackets: Counter
  readonly encapPackets: Counter
  readonly encapBytes: Counter
  readonly netRxPackets: Counter
  readonly decapPackets: Counter
  readonly decapBytes: Counter
  readonly icmpSent: Counter
  /** indexed by `Drop` reason */
  readonly drops: ReadonlyArray<Counter>
}

export const makeTunnelMetrics = (ifname: string): TunnelMetrics => {
  const tag = (m: Counter): Counter => m.pipe(Metric.tagged("ifname", ifname))
  const counter = (name: string, description: string) => tag(Metric.counter(name, { description }))
  return {
    tunRxPackets: counter("kiwitun_tun_rx_packets_total", "packets read from the TUN device"),
    encapPackets: counter("kiwitun_encap_packets_total", "outer packets sent to the network"),
    encapBytes: counter("kiwitun_encap_bytes_total", "bytes of outer packets sent to the network"),
    netRxPackets: counter("kiwitun_net_rx_packets_total", "encapsulated packets received from the network"),
    decapPackets: counter("kiwitun_decap_packets_total", "inner packets written to the TUN device"),
    decapBytes: counter("kiwitun_decap_bytes_total", "bytes of inner packets written to the TUN device"),
    icmpSent: counter("kiwitun_icmp_sent_total", "ICMP errors written back into the TUN device"),
    drops: Array.from({ length: DROP_COUNT }, (_, i) =>
      tag(
        Metric.counter("kiwitun_drops_total", { description: "packets dropped, by reason" }).pipe(
          Metric.tagged("reason", dropName[i]!)
        )
      ))
  }
}

/** A plain snapshot of a tunnel's counters, for logs and the status report. */
export interface CounterSnapshot {
  readonly tunRxPackets: number
  readonly encapPackets: number
  readonly encapBytes: number
  readonly netRxPackets: number
  readonly decapPackets: number
  readonly decapBytes: number
  readonly icmpSent: number
  /** only the reasons with a non-zero count */
  readonly drops: Readonly<Record<string, number>>
}

export const snapshot = (m: TunnelMetrics): CounterSnapshot => {
  const v = (c: Counter) => c.unsafeValue([]).count
  const drops: Record<string, number> = {}
  for (let i = 0; i < DROP_COUNT; i++) {
    const n = v(m.drops[i]!)
    if (n > 0) drops[dropName[i]!] = n
  }
  return {
    tunRxPackets: v(m.tunRxPackets),
    encapPackets: v(m.encapPackets),
    encapBytes: v(m.encapBytes),
    netRxPackets: v(m.netRxPackets),
    decapPackets: v(m.decapPackets),
    decapBytes: v(m.decapBytes),
    icmpSent: v(m.icmpSent),
    drops
  }
}

/** Adds a chunk's drop counts to the metrics and zeroes them for reuse. */
export const flushDrops = (m: TunnelMetrics, drops: Uint32Array): void => {
  for (let i = 0; i < DROP_COUNT; i++) {
    const n = drops[i]!
    if (n !== 0) {
      m.drops[i]!.unsafeUpdate(n, [])
      drops[i] = 0
    }
  }
}

export const formatSnapshot = (s: CounterSnapshot): string => {
  const drops = Object.entries(s.drops).map(([k, n]) => `${k}=${n}`).join(" ")
  return `tun_rx=${s.tunRxPackets} encap_packets=${s.encapPackets} encap_bytes=${s.encapBytes} ` +
    `net_rx=${s.netRxPackets} decap_packets=${s.decapPackets} decap_bytes=${s.decapBytes} icmp_sent=${s.icmpSent}` +
    (drops.length > 0 ? ` ${drops}` : " drops=0")
}
