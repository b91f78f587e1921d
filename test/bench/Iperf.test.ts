import { Effect, Either } from "effect"
import { describe, expect, it } from "vitest"
import * as Iperf from "../../bench/lib/Iperf.js"

const run = (text: string, udp: boolean) => Effect.runSync(Effect.either(Iperf.interpret(text, udp)))

// Trimmed from real iperf 3.12 -J reports (keys as iperf3 writes them, values from runs between two namespaces).
const tcpReport = JSON.stringify({
  start: { version: "iperf 3.12" },
  intervals: [],
  end: {
    sum_sent: { start: 0, end: 10, seconds: 10, bytes: 2_262_500_000, bits_per_second: 1.81e9, retransmits: 12 },
    sum_received: { start: 0, end: 10.04, seconds: 10.04, bytes: 2_250_000_000, bits_per_second: 1.79e9 },
    cpu_utilization_percent: { host_total: 35.5, host_user: 1, host_system: 34.5, remote_total: 60.1 }
  }
})

const udpReport = JSON.stringify({
  end: {
    sum: { seconds: 1.000105, bytes: 42225280, bits_per_second: 337792106, packets: 659770, lost_packets: 444625 },
    sum_sent: { seconds: 1.00003, bytes: 42225280, bits_per_second: 337792106, packets: 659770, lost_packets: 0 },
    sum_received: {
      seconds: 1.000105,
      bytes: 13769280,
      bits_per_second: 110142675,
      packets: 659770,
      lost_packets: 444625,
      lost_percent: 67.39
    }
  }
})

describe("iperf3 reports", () => {
  it("TCP: the receiver's goodput and the sender's retransmits", () => {
    const r = run(tcpReport, false)
    expect(r).toEqual(Either.right({
      tcp: { gbps: 1.79, retransmits: 12, iperfCpu: { client: 35.5, server: 60.1 } }
    }))
  })

  it("UDP: delivered datagrams are the receiver's count minus its losses", () => {
    const r = run(udpReport, true)
    if (Either.isLeft(r) || !("udp" in r.right)) throw new Error("expected a UDP result")
    // 13769280 bytes of 64-byte datagrams: 215145 delivered in 1.000105 s
    expect(r.right.udp.deliveredPps).toBeCloseTo(215145 / 1.000105, 3)
    expect(r.right.udp.sentPps).toBeCloseTo(659770 / 1.00003, 3)
    expect(r.right.udp.lostPercent).toBe(67.39)
  })

  it("an iperf3 error, a report without sums and non-JSON are failures with the reason", () => {
    const error = run(JSON.stringify({ start: {}, error: "unable to connect to server: Connection refused" }), false)
    expect(Either.isLeft(error) && error.left.message).toBe("unable to connect to server: Connection refused")
    expect(Either.isLeft(run(JSON.stringify({ end: {} }), false))).toBe(true)
    expect(Either.isLeft(run("iperf3: error - the server is busy", false))).toBe(true)
  })

  it("client arguments: duration, JSON, streams, UDP at full speed", () => {
    const base = { client: { name: "a" }, server: { name: "b" }, target: "198.51.100.2", seconds: 10 }
    expect(Iperf.clientArgs(base)).toEqual([
      "iperf3", "-c", "198.51.100.2", "-p", "5201", "-t", "10", "-J", "--connect-timeout", "5000"
    ])
    expect(Iperf.clientArgs({ ...base, streams: 4 }).slice(-2)).toEqual(["-P", "4"])
    expect(Iperf.clientArgs({ ...base, udpPayload: 64 }).slice(-5)).toEqual(["-u", "-l", "64", "-b", "0"])
    // paced: 150,000 datagrams of 64 bytes per second are 76.8 Mbit/s of payload
    expect(Iperf.clientArgs({ ...base, udpPayload: 64, udpRate: 150_000, socketBuffer: 4194304 }).slice(-7)).toEqual([
      "-w", "4194304", "-u", "-l", "64", "-b", "76800000"
    ])
    // never "0", which iperf3 reads as "unpaced"
    expect(Iperf.udpBitrate(0.0001, 64)).toBe("1")
  })
})
