/** The harness's parsers (pure; the harness's resources are tested in test/integration/Netns.test.ts). */
import { Option } from "effect"
import { describe, expect, it } from "vitest"
import * as Netns from "../../../scripts/lib/Netns.js"

describe("Netns parsers", () => {
  it("parses the daemon's counter line", () => {
    const line = "2025-01-01T00:00:00.000Z kiwitun[12]: info: counters tun_rx=3 encap_packets=3 encap_bytes=252 " +
      "net_rx=4 decap_packets=4 decap_bytes=336 icmp_sent=0 encap_no_route=2 tunnel=ktun0"
    expect(Netns.parseCounters(line)).toEqual({
      tun_rx: 3,
      encap_packets: 3,
      encap_bytes: 252,
      net_rx: 4,
      decap_packets: 4,
      decap_bytes: 336,
      icmp_sent: 0,
      encap_no_route: 2
    })
    expect(Netns.lastCounters(["x", "counters a=1", "y", "counters a=2"])).toEqual(Option.some({ a: 2 }))
  })

  it("parses ping output", () => {
    const out = "64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.045 ms\n" +
      "64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=1.5 ms\n\n" +
      "--- 192.0.2.2 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 401ms\n"
    expect(Netns.parsePing(out)).toEqual({ transmitted: 3, received: 2, rtts: [0.045, 1.5], average: Number.NaN })
    const summary = `${out}rtt min/avg/max/mdev = 0.045/0.772/1.500/0.727 ms\n`
    expect(Netns.parsePing(summary)).toMatchObject({ received: 2, rtts: [0.045, 1.5], average: 0.772 })
  })

  it("parses a flood's summary (ping -f -q prints no per-ping lines)", () => {
    const out = "PING 198.51.100.2 (198.51.100.2) 56(84) bytes of data.\n\n" +
      "--- 198.51.100.2 ping statistics ---\n" +
      "20000 packets transmitted, 19998 received, 0.01% packet loss, time 6012ms\n" +
      "rtt min/avg/max/mdev = 0.187/0.272/8.469/0.170 ms, ipg/ewma 0.298/0.273 ms\n"
    expect(Netns.parsePing(out)).toEqual({ transmitted: 20000, received: 19998, rtts: [], average: 0.272 })
    expect(Netns.parsePing("connect: Network is unreachable\n").average).toBeNaN()
  })
})
