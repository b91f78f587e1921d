/**
 * Packet crafter and counters for the reliability tests, run inside a namespace (`ip netns exec NS node craft.js`).
 * Plain Node, like tcpPeer.ts: a small process of its own, started and stopped by the harness. Sockets go through
 * the typed libc bindings of src/layers/Ffi.ts.
 *
 *   node craft.js send
 *     reads a SendPlan (JSON) on stdin and sends its frames, paced, through an AF_PACKET socket (whole IPv4
 *     packets, nothing rewritten by this host's kernel) or a raw IPPROTO_RAW socket (IP_HDRINCL: the kernel fills
 *     in the checksum and total length of a header with IHL >= 5 and passes anything else as it is); prints
 *     "sending", then one SendReport line.
 *   node craft.js udp-count <address> <port>
 *     counts datagrams by tag (their first 8 payload bytes, trailing spaces trimmed); prints "listening", and
 *     {"counts": {...}} on SIGTERM, then exits.
 *   node craft.js icmp-flood <4|6> <destination> <port> <count> <milliseconds>
 *     sends <count> UDP datagrams to <destination> evenly over <milliseconds> and records every ICMP / ICMPv6
 *     destination-unreachable about them that comes back; prints one FloodReport line a second after the last send.
 *   node craft.js dns <address> <port> [name=a.b.c.d ...]
 *     a DNS server answering A queries for the names given and NXDOMAIN for every other name; prints "listening"
 *     and one line per query: "query <name> <type> <answer>".
 */
import * as Dgram from "node:dgram"
import * as Ffi from "../../src/layers/Ffi.js"

/** How the frames leave: `packet` = AF_PACKET on `ifname` to `dstMac`; `raw` = IPPROTO_RAW addressed to `to`. */
export type SendVia =
  | { readonly kind: "packet"; readonly ifname: string; readonly dstMac: string }
  | {
    readonly kind: "raw"
    readonly to: string
    /**
     * IP_PMTUDISC_PROBE: check packets against the device MTU only, not a path MTU learned from ICMP, so that an
     * oversize DF packet keeps reaching the device after the first Fragmentation Needed.
     */
    readonly ignorePathMtu?: boolean
  }

export interface SendItem {
  readonly name: string
  /** IPv4 (or other) packets as hex, sent back to back in each round. */
  readonly frames: ReadonlyArray<string>
  /** Rounds in which this item is sent (default: the plan's). */
  readonly rounds?: number
  /**
   * Give every round its own IPv4 identification (item base + round, never 0) and redo the header checksum:
   * fragments of one round must not be taken for those of another.
   */
  readonly freshId?: number
}

export interface SendPlan {
  readonly via: SendVia
  readonly rounds: number
  /** Packets per second at most, over the whole run. */
  readonly rate: number
  readonly items: ReadonlyArray<SendItem>
}

export interface SendReport {
  readonly durationMs: number
  readonly items: ReadonlyArray<{
    readonly name: string
    readonly sent: number
    /** Failed sends by errno number. */
    readonly errors: Readonly<Record<string, number>>
  }>
}

export interface FloodReport {
  readonly sent: number
  readonly sendErrors: number
  /** Wall-clock time of the first send (ms since the epoch), to line up the reports of floods run side by side. */
  readonly startedAt: number
  /** Milliseconds after the first send at which each error arrived. */
  readonly replies: ReadonlyArray<number>
  readonly lastSendMs: number
}

const AF_INET6 = 10
const AF_PACKET = 17
const IPPROTO_ICMP = 1
const IPPROTO_RAW = 255
const IPPROTO_ICMPV6 = 58
const IP_MTU_DISCOVER = 10
const IP_PMTUDISC_PROBE = 3
const ETH_P_IP = 0x0800
const SOCKADDR_LL_SIZE = 20
const RECV_BUFFER = 4 * 1024 * 1024

const lib = Ffi.libc()

const die = (message: string): never => {
  console.error(`craft: ${message}`)
  process.exit(1)
}

const checked = (what: string, r: number): number =>
  r < 0 ? die(`${what}: ${Ffi.describeErrno(lib, -r)}`) : r

const ipv4Bytes = (text: string): Uint8Array => {
  const parts = text.split(".").map(Number)
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) die(`bad IPv4 ${text}`)
  return Uint8Array.from(parts)
}

const sockaddrIn = (address: string): Uint8Array => {
  const sa = new Uint8Array(Ffi.SOCKADDR_IN_SIZE)
  new DataView(sa.buffer).setUint16(0, Ffi.AF_INET, true)
  sa.set(ipv4Bytes(address), 4)
  return sa
}

/** struct sockaddr_ll for sending on `ifname` to `mac` (an IPv4 frame: the kernel writes the link header). */
const sockaddrLl = (ifname: string, mac: string): Uint8Array => {
  const index = lib.ifNameToIndex(ifname)
  if (index < 0) die(`no interface ${ifname}`)
  // A device without a link header (a TUN device) takes no address: ""
  const octets = mac === "" ? [] : mac.split(":").map((h) => parseInt(h, 16))
  if (octets.length !== 0 && (octets.length !== 6 || octets.some((o) => !Number.isInteger(o)))) die(`bad MAC ${mac}`)
  const sa = new Uint8Array(SOCKADDR_LL_SIZE)
  const dv = new DataView(sa.buffer)
  dv.setUint16(0, AF_PACKET, true)
  dv.setUint16(2, ETH_P_IP, false)
  dv.setInt32(4, index, true)
  sa[11] = octets.length // sll_halen
  sa.set(octets, 12)
  return sa
}

const headerChecksum = (p: Uint8Array): void => {
  const hl = (p[0]! & 0x0f) * 4
  p[10] = 0
  p[11] = 0
  let sum = 0
  for (let i = 0; i < hl; i += 2) sum += (p[i]! << 8) | p[i + 1]!
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16)
  const c = ~sum & 0xffff
  p[10] = c >>> 8
  p[11] = c & 0xff
}

const readStdin = (): Promise<string> =>
  new Promise((resolve) => {
    const chunks: Array<Buffer> = []
    process.stdin.on("data", (c: Buffer) => chunks.push(c))
    process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")))
  })

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const send = async (): Promise<void> => {
  const plan = JSON.parse(await readStdin()) as SendPlan
  const fd = plan.via.kind === "packet"
    ? checked("socket(AF_PACKET)", lib.socket(AF_PACKET, Ffi.SOCK_DGRAM | Ffi.SOCK_CLOEXEC, 0))
    : checked("socket(IPPROTO_RAW)", lib.socket(Ffi.AF_INET, Ffi.SOCK_RAW | Ffi.SOCK_CLOEXEC, IPPROTO_RAW))
  const to = plan.via.kind === "packet" ? sockaddrLl(plan.via.ifname, plan.via.dstMac) : sockaddrIn(plan.via.to)
  if (plan.via.kind === "raw" && plan.via.ignorePathMtu === true) {
    checked("IP_MTU_DISCOVER", lib.setsockoptInt(fd, Ffi.SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_PROBE))
  }
  const items = plan.items.map((item) => ({
    ...item,
    bytes: item.frames.map((h) => Uint8Array.from(Buffer.from(h, "hex"))),
    rounds: Math.min(item.rounds ?? plan.rounds, plan.rounds),
    sent: 0,
    errors: {} as Record<string, number>
  }))
  console.log("sending")
  const began = performance.now()
  let total = 0
  for (let round = 0; round < plan.rounds; round++) {
    for (const item of items) {
      if (round >= item.rounds) continue
      for (const frame of item.bytes) {
        if (item.freshId !== undefined) {
          const id = ((item.freshId + round) % 0xffff) + 1
          frame[4] = id >>> 8
          frame[5] = id & 0xff
          headerChecksum(frame)
        }
        const r = lib.sendto(fd, frame, 0, to)
        if (r < 0) item.errors[String(-r)] = (item.errors[String(-r)] ?? 0) + 1
        else item.sent++
        total++
      }
    }
    // Paced so that no socket buffer on the way overflows: what the daemon counts must be what was sent.
    while (total > (plan.rate * (performance.now() - began)) / 1000) await sleep(1)
  }
  lib.close(fd)
  const report: SendReport = {
    durationMs: Math.round(performance.now() - began),
    items: items.map(({ errors, name, sent }) => ({ name, sent, errors }))
  }
  console.log(JSON.stringify(report))
}

const udpCount = (address: string, port: number): void => {
  const counts: Record<string, number> = {}
  const socket = Dgram.createSocket({ type: "udp4", recvBufferSize: RECV_BUFFER })
  socket.on("message", (msg: Buffer) => {
    const tag = msg.subarray(0, 8).toString("latin1").trimEnd()
    counts[tag] = (counts[tag] ?? 0) + 1
  })
  socket.on("error", (e) => die(`udp-count: ${e.message}`))
  socket.bind(port, address, () => console.log("listening"))
  process.once("SIGTERM", () => {
    console.log(JSON.stringify({ counts }))
    socket.close()
    process.exit(0)
  })
}

/** Whether an ICMP(v6) error (its message, after any IP header) quotes a UDP datagram to `port`. */
const quotesPort = (msg: Uint8Array, family: 4 | 6, port: number): boolean => {
  if (family === 4) {
    // type 3 (destination unreachable); the quote starts at 8 with an IPv4 header of its own
    if (msg[0] !== 3 || msg.length < 8 + 20 + 4) return false
    const ihl = (msg[8]! & 0x0f) * 4
    const udp = 8 + ihl
    return msg[8 + 9] === 17 && msg.length >= udp + 4 && ((msg[udp + 2]! << 8) | msg[udp + 3]!) === port
  }
  // type 1 (destination unreachable); quoted IPv6 header of 40 bytes, next header UDP
  if (msg[0] !== 1 || msg.length < 8 + 40 + 4) return false
  return msg[8 + 6] === 17 && ((msg[8 + 40 + 2]! << 8) | msg[8 + 40 + 3]!) === port
}

const icmpFlood = async (family: 4 | 6, destination: string, port: number, count: number, ms: number) => {
  const proto = family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6
  const fd = checked(
    "socket(icmp)",
    lib.socket(family === 4 ? Ffi.AF_INET : AF_INET6, Ffi.SOCK_RAW | Ffi.SOCK_NONBLOCK | Ffi.SOCK_CLOEXEC, proto)
  )
  if (lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUFFORCE, RECV_BUFFER) < 0) {
    lib.setsockoptInt(fd, Ffi.SOL_SOCKET, Ffi.SO_RCVBUF, RECV_BUFFER)
  }
  const buffer = new Uint8Array(new ArrayBuffer(65536))
  const replies: Array<number> = []
  let began = performance.now()
  const drain = (): void => {
    for (;;) {
      const n = lib.recvfrom(fd, buffer, Ffi.MSG_DONTWAIT, null)
      if (n < 0) return
      // An IPv4 raw socket sees the IP header; an IPv6 one only the ICMPv6 message.
      const msg = family === 4 ? buffer.subarray((buffer[0]! & 0x0f) * 4, n) : buffer.subarray(0, n)
      if (quotesPort(msg, family, port)) replies.push(Math.round(performance.now() - began))
    }
  }
  const poll = setInterval(drain, 1)
  const socket = Dgram.createSocket(family === 4 ? "udp4" : "udp6")
  socket.on("error", () => undefined) // errors of an unconnected socket: not ours to report
  await new Promise<void>((resolve) => socket.bind(0, resolve))
  const payload = Buffer.alloc(32, 0x61)
  let sent = 0
  let sendErrors = 0
  began = performance.now()
  const startedAt = Date.now()
  while (sent < count) {
    const due = Math.min(count, Math.ceil((count * (performance.now() - began)) / ms) + 1)
    while (sent < due) {
      sent++
      socket.send(payload, port, destination, (e) => {
        if (e !== null) sendErrors++
      })
    }
    await sleep(1)
  }
  const lastSendMs = Math.round(performance.now() - began)
  await sleep(1000)
  drain()
  clearInterval(poll)
  socket.close()
  lib.close(fd)
  const report: FloodReport = { sent, sendErrors, startedAt, replies, lastSendMs }
  console.log(JSON.stringify(report))
}

/** The question's name and the offset just past it (labels only: a query carries no compression). */
const questionName = (q: Buffer): { readonly name: string; readonly end: number } | undefined => {
  const labels: Array<string> = []
  let off = 12
  while (off < q.length) {
    const len = q[off]!
    if (len === 0) return { name: labels.join("."), end: off + 1 }
    if (len > 63 || off + 1 + len > q.length) return undefined
    labels.push(q.subarray(off + 1, off + 1 + len).toString("latin1"))
    off += 1 + len
  }
  return undefined
}

const dns = (address: string, port: number, records: ReadonlyArray<string>): void => {
  const table = new Map<string, Uint8Array>()
  for (const record of records) {
    const eq = record.indexOf("=")
    if (eq < 1) die(`bad record ${record} (want name=a.b.c.d)`)
    table.set(record.slice(0, eq).toLowerCase(), ipv4Bytes(record.slice(eq + 1)))
  }
  const socket = Dgram.createSocket("udp4")
  socket.on("message", (q: Buffer, from) => {
    const question = questionName(q)
    if (q.length < 12 || question === undefined || question.end + 4 > q.length) return
    const qtype = q.readUInt16BE(question.end)
    const known = table.get(question.name.toLowerCase())
    // RFC 1035 4.1: QR, opcode 0, RD copied, RA; rcode 3 (NXDOMAIN) for a name we do not hold
    const rcode = known === undefined ? 3 : 0
    const answer = known !== undefined && qtype === 1
    const head = Buffer.alloc(12)
    q.copy(head, 0, 0, 2)
    head.writeUInt16BE(0x8080 | (q.readUInt16BE(2) & 0x0100) | rcode, 2)
    head.writeUInt16BE(1, 4)
    head.writeUInt16BE(answer ? 1 : 0, 6)
    const parts = [head, q.subarray(12, question.end + 4)]
    if (answer) {
      const rr = Buffer.alloc(16)
      rr.writeUInt16BE(0xc00c, 0) // pointer to the question's name
      rr.writeUInt16BE(1, 2) // A
      rr.writeUInt16BE(1, 4) // IN
      rr.writeUInt32BE(0, 6) // TTL 0: never cached
      rr.writeUInt16BE(4, 10)
      rr.set(known, 12)
      parts.push(rr)
    }
    socket.send(Buffer.concat(parts), from.port, from.address)
    const shown = answer ? [...known].join(".") : known === undefined ? "NXDOMAIN" : "NODATA"
    console.log(`query ${question.name} ${qtype === 1 ? "A" : qtype === 28 ? "AAAA" : String(qtype)} ${shown}`)
  })
  socket.on("error", (e) => die(`dns: ${e.message}`))
  socket.bind(port, address, () => console.log("listening"))
  process.once("SIGTERM", () => {
    socket.close()
    process.exit(0)
  })
}

const [mode, ...args] = process.argv.slice(2)
switch (mode) {
  case "send":
    await send()
    break
  case "udp-count":
    udpCount(args[0] ?? "0.0.0.0", Number(args[1]))
    break
  case "icmp-flood":
    await icmpFlood(args[0] === "6" ? 6 : 4, args[1] ?? "", Number(args[2]), Number(args[3]), Number(args[4]))
    break
  case "dns":
    dns(args[0] ?? "127.0.0.1", Number(args[1] ?? 53), args.slice(2))
    break
  default:
    die(`usage: craft.js send | udp-count ADDR PORT | icmp-flood 4|6 DST PORT COUNT MS | dns ADDR PORT [name=addr]`)
}
