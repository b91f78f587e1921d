import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import type { StatusReport } from "../../src/domain/Status.js"
import {
  formatBytes,
  formatCount,
  formatStatus,
  formatUptime,
  StatusReportJson,
  summaryLine
} from "../../src/domain/Status.js"

const report: StatusReport = {
  version: "0.1.0",
  pid: 4242,
  ifname: "ktun0",
  ifindex: 7,
  mode: "4in4+6in4",
  mtu: 1480,
  remote: "192.0.2.2",
  local: "",
  user: "nobody",
  uid: 65534,
  startedAt: "2024-05-01T10:00:00.000Z",
  uptimeSeconds: 7384.9,
  memory: { rssBytes: 97_517_568, heapUsedBytes: 19_398_656 },
  counters: {
    tunRxPackets: 1234567,
    encapPackets: 1234560,
    encapBytes: 1_500_000_000,
    netRxPackets: 1000,
    decapPackets: 998,
    decapBytes: 84_000,
    icmpSent: 3,
    drops: { decap_remote_mismatch: 2, encap_no_route: 7 }
  }
}

describe("formatCount", () => {
  it("groups thousands with commas whatever the locale", () => {
    expect(formatCount(0)).toBe("0")
    expect(formatCount(999)).toBe("999")
    expect(formatCount(1000)).toBe("1,000")
    expect(formatCount(1234567)).toBe("1,234,567")
  })
})

describe("formatBytes", () => {
  it("uses bytes below 1 KiB and one decimal above", () => {
    expect(formatBytes(0)).toBe("0 B")
    expect(formatBytes(1023)).toBe("1023 B")
    expect(formatBytes(1024)).toBe("1.0 KiB")
    expect(formatBytes(1536)).toBe("1.5 KiB")
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MiB")
    expect(formatBytes(1_500_000_000)).toBe("1.4 GiB")
  })
  it("never prints 1024.0 of a unit", () => {
    expect(formatBytes(1024 * 1024 - 1)).toBe("1.0 MiB")
  })
})

describe("formatUptime", () => {
  it("shows the two or three most significant units", () => {
    expect(formatUptime(0)).toBe("0s")
    expect(formatUptime(59.9)).toBe("59s")
    expect(formatUptime(65)).toBe("1m 05s")
    expect(formatUptime(7384.9)).toBe("2h 03m 04s")
    expect(formatUptime(3 * 86400 + 2 * 3600 + 3 * 60 + 4)).toBe("3d 02h 03m")
  })
})

describe("formatStatus", () => {
  it("prints the table a person reads", () => {
    expect(formatStatus(report)).toBe(
      [
        "kiwitun 0.1.0, pid 4242",
        "interface   ktun0 (index 7), 4in4+6in4, MTU 1480",
        "remote      192.0.2.2",
        "local       chosen by the kernel",
        "user        nobody (uid 65534)",
        "uptime      2h 03m 04s (since 2024-05-01T10:00:00.000Z)",
        "memory      93.0 MiB resident, 18.5 MiB JavaScript heap",
        "",
        "direction          packets in   packets out   bytes out",
        "tun -> network      1,234,567     1,234,560     1.4 GiB",
        "network -> tun          1,000           998    82.0 KiB",
        "ICMP errors sent                          3",
        "",
        "drops                     9",
        "  encap_no_route          7",
        "  decap_remote_mismatch   2",
        ""
      ].join("\n")
    )
  })
  it("says when nothing was dropped, and shows a fixed local address", () => {
    const text = formatStatus({ ...report, local: "192.0.2.1", counters: { ...report.counters, drops: {} } })
    expect(text).toMatch(/^local {7}192\.0\.2\.1$/m)
    expect(text).toMatch(/^drops {3}none$/m)
  })
})

describe("summaryLine", () => {
  it("fits the counters on one line for STATUS=", () => {
    expect(summaryLine(report)).toBe(
      "ktun0 up, remote 192.0.2.2; tun->net 1,234,560 pkts 1.4 GiB, net->tun 998 pkts 82.0 KiB, 9 dropped, 3 ICMP sent"
    )
    expect(summaryLine(report)).not.toMatch(/\n/)
  })
})

describe("StatusReportJson", () => {
  it("decodes what the daemon encodes", () => {
    const decoded = Schema.decodeUnknownEither(StatusReportJson)(JSON.stringify(report))
    expect(decoded).toEqual(Either.right(report))
  })
  it("rejects an answer that is not a report", () => {
    expect(Either.isLeft(Schema.decodeUnknownEither(StatusReportJson)("{\"error\":\"unknown request\"}"))).toBe(true)
    const negative = { ...report, counters: { ...report.counters, encapPackets: -1 } }
    expect(Either.isLeft(Schema.decodeUnknownEither(StatusReportJson)(JSON.stringify(negative)))).toBe(true)
  })
})
