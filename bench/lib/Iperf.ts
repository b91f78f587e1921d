/**
 * iperf3 between two namespaces: a one-shot server in one, a client in the other, always under `timeout(1)`
 * (an iperf3 client spins forever when the path dies mid-test), results read from the client's `-J` report.
 */
import type { Duration } from "effect"
import { Data, Effect, Schema } from "effect"
import * as Netns from "../../scripts/lib/Netns.js"

export class IperfError extends Data.TaggedError("IperfError")<{
  readonly reason: "exit" | "report"
  readonly message: string
}> {}

const Sum = Schema.Struct({
  seconds: Schema.Number,
  bytes: Schema.Number,
  bits_per_second: Schema.Number,
  retransmits: Schema.optional(Schema.Number),
  packets: Schema.optional(Schema.Number),
  lost_packets: Schema.optional(Schema.Number),
  lost_percent: Schema.optional(Schema.Number)
})

const Report = Schema.Struct({
  error: Schema.optional(Schema.String),
  end: Schema.optional(Schema.Struct({
    sum_sent: Schema.optional(Sum),
    sum_received: Schema.optional(Sum),
    cpu_utilization_percent: Schema.optional(Schema.Struct({
      host_total: Schema.Number,
      remote_total: Schema.Number
    }))
  }))
})
const ReportJson = Schema.parseJson(Report)

export interface TcpResult {
  /** Receiver's goodput. */
  readonly gbps: number
  readonly retransmits: number
  /** iperf3's own CPU use, % (client host, server host). */
  readonly iperfCpu: { readonly client: number; readonly server: number }
}

export interface UdpResult {
  /** Datagrams the receiver got, per second of its measurement. */
  readonly deliveredPps: number
  readonly sentPps: number
  readonly lostPercent: number
}

export type Result = { readonly tcp: TcpResult } | { readonly udp: UdpResult }

/**
 * Interprets a client's `-J` report: TCP goodput from the receiver's sum; UDP delivered datagrams as the
 * receiver's count minus its losses (its "packets" counts every sequence number it saw, lost ones included).
 */
export const interpret = (text: string, udp: boolean): Effect.Effect<Result, IperfError> =>
  Effect.gen(function*() {
    const report = yield* Schema.decodeUnknown(ReportJson)(text).pipe(
      Effect.mapError((e) =>
        new IperfError({ reason: "report", message: `unreadable iperf3 report (${e.message}): ${text.slice(0, 500)}` })
      )
    )
    if (report.error !== undefined) return yield* new IperfError({ reason: "report", message: report.error })
    const sent = report.end?.sum_sent
    const received = report.end?.sum_received
    if (sent === undefined || received === undefined || received.seconds <= 0) {
      return yield* new IperfError({ reason: "report", message: `iperf3 report without sums: ${text.slice(0, 500)}` })
    }
    if (!udp) {
      const cpu = report.end?.cpu_utilization_percent
      return {
        tcp: {
          gbps: received.bits_per_second / 1e9,
          retransmits: sent.retransmits ?? 0,
          iperfCpu: { client: cpu?.host_total ?? Number.NaN, server: cpu?.remote_total ?? Number.NaN }
        }
      }
    }
    const packets = received.packets ?? 0
    const lost = received.lost_packets ?? 0
    return {
      udp: {
        deliveredPps: (packets - lost) / received.seconds,
        sentPps: (sent.packets ?? 0) / (sent.seconds > 0 ? sent.seconds : received.seconds),
        lostPercent: received.lost_percent ?? Number.NaN
      }
    }
  })

export interface TestOptions {
  readonly client: Netns.Namespace
  readonly server: Netns.Namespace
  /** Address of the server as the client reaches it (IPv4 or IPv6). */
  readonly target: string
  readonly seconds: number
  /** Parallel streams (-P). */
  readonly streams?: number
  /** UDP datagrams of this payload size (-u -l N), sent as fast as possible unless `udpRate` is given. */
  readonly udpPayload?: number
  /** UDP: datagrams per second to offer (iperf3 paces its -b in payload bits per second). */
  readonly udpRate?: number
  /** Socket buffer size in bytes for both ends (-w: the client's send and the server's receive buffer). */
  readonly socketBuffer?: number
  readonly port?: number
}

/** iperf3's -b for `pps` datagrams of `payload` bytes per second: it counts payload bits, whole bits per second. */
export const udpBitrate = (pps: number, payload: number): string => String(Math.max(1, Math.round(pps * payload * 8)))

/** iperf3's argument list for a client (without `timeout`). */
export const clientArgs = (o: TestOptions): ReadonlyArray<string> => [
  "iperf3",
  "-c",
  o.target,
  "-p",
  String(o.port ?? 5201),
  "-t",
  String(o.seconds),
  "-J",
  "--connect-timeout",
  "5000",
  ...(o.streams !== undefined && o.streams > 1 ? ["-P", String(o.streams)] : []),
  ...(o.socketBuffer !== undefined ? ["-w", String(o.socketBuffer)] : []),
  ...(o.udpPayload !== undefined
    ? ["-u", "-l", String(o.udpPayload), "-b", o.udpRate !== undefined ? udpBitrate(o.udpRate, o.udpPayload) : "0"]
    : [])
]

/**
 * A one-shot iperf3 server (`-1`: it serves one test and exits, so nothing from an earlier test lingers in it),
 * listening when this returns; stopped when the scope closes if it is still running.
 */
export const server = (ns: Netns.Namespace, port = 5201) =>
  Effect.gen(function*() {
    const proc = yield* Netns.spawn(ns, ["iperf3", "-s", "-1", "-p", String(port), "--forceflush"], {
      grace: "1 second"
    })
    yield* proc.waitForLine(/Server listening/, { timeout: "10 seconds" })
    return proc
  })

/** The client side of one test, under `timeout` with a hard kill after it, and under our own timeout too. */
export const client = (o: TestOptions): Effect.Effect<Result, IperfError | Netns.NetnsError> =>
  Effect.gen(function*() {
    // A few seconds of connection setup and final report exchange on top of the test itself.
    const limit = o.seconds + 20
    const deadline: Duration.DurationInput = `${limit + 10} seconds`
    const run = yield* Netns.exec(o.client, ["timeout", "-k", "5", String(limit), ...clientArgs(o)], {
      timeout: deadline
    })
    if (run.code === 124 || run.code === 137) {
      return yield* new IperfError({ reason: "exit", message: `iperf3 to ${o.target} did not finish in ${limit} s` })
    }
    // A failing iperf3 still prints a report whose "error" says why: read it first.
    const result = yield* interpret(run.stdout, o.udpPayload !== undefined)
    if (run.code !== 0) {
      return yield* new IperfError({ reason: "exit", message: `iperf3 exited with ${run.code}: ${run.stderr.trim()}` })
    }
    return result
  })

/**
 * One test: a fresh server, then the client; `around` wraps the client alone (e.g. to measure CPU use over exactly
 * the test). Everything is owned by a scope that closes even on interruption.
 */
export const test = <A, E>(
  o: TestOptions,
  around: (client: Effect.Effect<Result, IperfError | Netns.NetnsError>) => Effect.Effect<A, E>
): Effect.Effect<A, E | Netns.NetnsError> =>
  Effect.scoped(Effect.zipRight(server(o.server, o.port), around(client(o))))
