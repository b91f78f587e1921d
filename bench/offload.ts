/**
 * TUN offload benchmark: software segmentation of 64 KB TCP super-packets into 1448-byte segments (what the TUN
 * reader does per super-packet with TSO on) and coalescing of a batch of 45 x 1448-byte segments into one
 * super-packet (what the TUN writer does with GRO), IPv4 and IPv6. Run `node dist/bench/offload.js`. Prints GB/s of
 * input bytes (median of several rounds) and writes bench/results/offload.json.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import * as Arena from "../src/domain/Arena.js"
import * as Gro from "../src/domain/Gro.js"
import * as Gso from "../src/domain/Gso.js"
import * as VirtioNet from "../src/domain/VirtioNet.js"

const MSS = 1448
const ROUNDS = 7
const ROUND_MS = 300

/** A TCP super-packet as the kernel hands it over: IP header, TCP header with timestamps, `payload` bytes. */
const superPacket = (v6: boolean, payload: number): Uint8Array => {
  const l4 = v6 ? 40 : 20
  const hl = l4 + 32
  const p = new Uint8Array(hl + payload)
  const dv = new DataView(p.buffer)
  if (v6) {
    dv.setUint32(0, 0x60012345)
    dv.setUint16(4, p.length - 40)
    p[6] = 6
    p[7] = 64
    p.set([0x20, 0x01, 0x0d, 0xb8, 0, 1], 8)
    p[23] = 0x10
    p.set([0x20, 0x01, 0x0d, 0xb8, 0, 2], 24)
    p[39] = 0x20
  } else {
    p[0] = 0x45
    dv.setUint16(2, p.length)
    dv.setUint16(4, 0x1234)
    dv.setUint16(6, 0x4000)
    p[8] = 64
    p[9] = 6
    dv.setUint32(12, 0xc000020a) // 192.0.2.10
    dv.setUint32(16, 0xc6336414) // 198.51.100.20
  }
  dv.setUint16(l4, 40000)
  dv.setUint16(l4 + 2, 5201)
  dv.setUint32(l4 + 4, 123456)
  dv.setUint32(l4 + 8, 654321)
  p[l4 + 12] = 8 << 4
  p[l4 + 13] = 0x18
  dv.setUint16(l4 + 14, 502)
  p.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], l4 + 20)
  for (let i = hl; i < p.length; i++) p[i] = (i * 31) & 0xff
  if (!v6) {
    let s = 0
    for (let i = 0; i < 20; i += 2) s += (p[i]! << 8) | p[i + 1]!
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16)
    dv.setUint16(10, ~s & 0xffff)
  }
  return p
}

const gsoHeader = (v6: boolean): VirtioNet.Header => ({
  ...VirtioNet.makeHeader(),
  flags: VirtioNet.Flag.NeedsCsum,
  gsoType: v6 ? VirtioNet.GsoType.TcpV6 : VirtioNet.GsoType.TcpV4,
  hdrLen: (v6 ? 40 : 20) + 32,
  gsoSize: MSS,
  csumStart: v6 ? 40 : 20,
  csumOffset: VirtioNet.TCP_CSUM_OFFSET
})

const median = (xs: ReadonlyArray<number>): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!

/** Runs `op` (processing `bytes` input bytes per call) for ROUNDS rounds of about ROUND_MS each; GB/s per round. */
const measure = (bytes: number, op: () => number): Array<number> => {
  let sink = 0
  for (let i = 0; i < 200; i++) sink += op() // warm-up: let the optimizing compiler see the hot path
  const rounds: Array<number> = []
  for (let r = 0; r < ROUNDS; r++) {
    let calls = 0
    const t0 = process.hrtime.bigint()
    let elapsed = 0
    while (elapsed < ROUND_MS * 1e6) {
      for (let i = 0; i < 50; i++) sink += op()
      calls += 50
      elapsed = Number(process.hrtime.bigint() - t0)
    }
    rounds.push((calls * bytes) / elapsed)
  }
  if (sink === 0.5) console.log("unreachable") // keeps the results live
  return rounds
}

interface Row {
  readonly name: string
  readonly inputBytes: number
  readonly packetsOut: number
  readonly gbPerSecond: number
  readonly rounds: ReadonlyArray<number>
}

const segmentRow = (v6: boolean): Row => {
  const hl = (v6 ? 40 : 20) + 32
  const packet = superPacket(v6, 65535 - hl)
  const hdr = gsoHeader(v6)
  const arena = Arena.make(1 << 20)
  const out: Array<Uint8Array> = []
  const op = () => {
    Arena.reset(arena)
    out.length = 0
    return Gso.segment(packet, hdr, out, arena)
  }
  const count = op()
  const rounds = measure(packet.length, op)
  return {
    name: `segment ${v6 ? "IPv6" : "IPv4"} ${packet.length} B super-packet -> ${count} x ${MSS}`,
    inputBytes: packet.length,
    packetsOut: count,
    gbPerSecond: median(rounds),
    rounds
  }
}

const coalesceRow = (v6: boolean): Row => {
  const hl = (v6 ? 40 : 20) + 32
  const segments: Array<Uint8Array> = []
  Gso.segment(superPacket(v6, 45 * MSS), gsoHeader(v6), segments, Arena.make(1 << 20))
  const batch = segments.map((s) => s.slice())
  const bytes = batch.reduce((n, s) => n + s.length, 0)
  const arena = Arena.make(1 << 20)
  const out: Array<Uint8Array> = []
  const op = () => {
    out.length = 0
    return Gro.coalesce(batch, out, arena, 0)
  }
  op()
  if (out.length !== 1 || out[0]!.length !== VirtioNet.HEADER_SIZE + hl + 45 * MSS) throw new Error("not merged")
  const rounds = measure(bytes, op)
  return {
    name: `coalesce ${v6 ? "IPv6" : "IPv4"} 45 x ${MSS} B segments -> 1`,
    inputBytes: bytes,
    packetsOut: out.length,
    gbPerSecond: median(rounds),
    rounds
  }
}

const run = () => {
  const rows = [segmentRow(false), segmentRow(true), coalesceRow(false), coalesceRow(true)]
  return { node: process.version, date: new Date().toISOString(), rounds: ROUNDS, roundMs: ROUND_MS, rows }
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]

if (isMain) {
  const result = run()
  const w = Math.max(...result.rows.map((r) => r.name.length))
  for (const r of result.rows) console.log(`${r.name.padEnd(w)}  ${r.gbPerSecond.toFixed(2).padStart(6)} GB/s`)
  console.log(`${result.node}, median of ${result.rounds} rounds of ${result.roundMs} ms; input bytes per second`)
  const dir = fileURLToPath(new URL("../../bench/results/", import.meta.url))
  mkdirSync(dir, { recursive: true })
  writeFileSync(`${dir}offload.json`, JSON.stringify(result, null, 2) + "\n")
  console.log(`wrote ${dir}offload.json`)
}
