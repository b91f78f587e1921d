/**
 * Route mirror benchmark: how many route changes per second the dynamic-mode mirror (src/domain/RouteMirror.ts)
 * applies, and what its lookups cost.
 *
 *   node --expose-gc dist/bench/routes.js          pure mirror: decoded messages, then rtnetlink datagrams
 *   node dist/bench/routes.js --live [changes]     also against the kernel (root): a namespace of its own with a TUN
 *                                                   device, `ip -batch` adds and deletes, RouteTableLive following
 *
 * Prints a table and writes bench/results/routes.json. The live part creates the namespace kwt-bench-routes-<pid>
 * and deletes it at the end, also on failure.
 */
import { Effect, Exit, Scope } from "effect"
import { execFileSync, spawn, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import path from "node:path"
import { PerformanceObserver } from "node:perf_hooks"
import { fileURLToPath } from "node:url"
import * as Netlink from "../src/domain/Netlink.js"
import * as RouteMirror from "../src/domain/RouteMirror.js"
import { makeRandom } from "./lib/Random.js"

const TUN = 7
const ROUTES = 100_000
/** Messages per datagram in a dump: the kernel fills about 32 KiB, some 250 IPv4 routes. */
const PER_DATAGRAM = 200
const LOOKUPS = 1 << 20


const rnd = makeRandom(0x5eed)

const v4Route = (prefix: number, length: number, gateway: number, table: number): Netlink.RouteInfo => {
  const dst = new Uint8Array(4)
  new DataView(dst.buffer).setUint32(0, (length === 0 ? 0 : prefix & (0xffffffff << (32 - length))) >>> 0)
  const gw = new Uint8Array(4)
  new DataView(gw.buffer).setUint32(0, gateway)
  return {
    family: 4,
    table,
    type: Netlink.RTN_UNICAST,
    protocol: 3,
    scope: 0,
    tos: 0,
    dst,
    dstLen: length,
    gateway: { family: 4, addr: gw },
    oif: TUN,
    priority: 0,
    flags: Netlink.RTNH_F_ONLINK,
    onlink: true,
    nexthops: []
  }
}

const v6Route = (i: number, gateway: number): Netlink.RouteInfo => {
  const dst = new Uint8Array(16)
  dst[0] = 0x20
  dst[1] = 0x01
  dst[2] = 0x0d
  dst[3] = 0xb8
  new DataView(dst.buffer).setUint32(4, i)
  const gw = new Uint8Array(16)
  gw[10] = 0xff
  gw[11] = 0xff
  new DataView(gw.buffer).setUint32(12, gateway)
  return {
    family: 6,
    table: 254,
    type: Netlink.RTN_UNICAST,
    protocol: 3,
    scope: 0,
    tos: 0,
    dst,
    dstLen: 64,
    gateway: { family: 6, addr: gw },
    oif: TUN,
    priority: 1024,
    flags: Netlink.RTNH_F_ONLINK,
    onlink: true,
    nexthops: []
  }
}

/** A mixed table: 3/4 IPv4 (lengths /16../32, two tables), 1/4 IPv6 /64s. */
const makeRoutes = (): Array<Netlink.RouteInfo> => {
  const out: Array<Netlink.RouteInfo> = []
  for (let i = 0; i < ROUTES; i++) {
    if (i % 4 === 3) out.push(v6Route(i, rnd()))
    else out.push(v4Route(rnd(), 16 + (rnd() % 17), rnd(), i % 8 === 0 ? 44 : 254))
  }
  return out
}

interface Change {
  readonly type: number
  readonly flags: number
  readonly route: Netlink.RouteInfo
}

const rate = (count: number, run: () => void): number => {
  const t0 = process.hrtime.bigint()
  run()
  return Math.round(count / (Number(process.hrtime.bigint() - t0) / 1e9))
}

const datagramsOf = (changes: ReadonlyArray<Change>, seq: number): Array<Uint8Array> => {
  const out: Array<Uint8Array> = []
  for (let i = 0; i < changes.length; i += PER_DATAGRAM) {
    const msgs = changes.slice(i, i + PER_DATAGRAM).map((c) => {
      const m = Netlink.buildRoute({ type: c.type as typeof Netlink.RTM_NEWROUTE, seq, route: c.route })
      new DataView(m.buffer).setUint16(6, c.flags, true)
      return m
    })
    const total = msgs.reduce((n, m) => n + Netlink.align4(m.length), 0)
    const d = new Uint8Array(total)
    let off = 0
    for (const m of msgs) {
      d.set(m, off)
      off += Netlink.align4(m.length)
    }
    out.push(d)
  }
  return out
}

const doneMessage = (seq: number): Uint8Array => {
  const d = new Uint8Array(20)
  const dv = new DataView(d.buffer)
  dv.setUint32(0, 20, true)
  dv.setUint16(4, Netlink.NLMSG_DONE, true)
  dv.setUint16(6, Netlink.NLM_F_MULTI, true)
  dv.setUint32(8, seq, true)
  return d
}

export interface PureFigures {
  readonly routes: number
  /** RouteSet.apply with decoded messages (RouteInfo), per second */
  readonly decoded: { readonly add: number; readonly replace: number; readonly delete: number }
  /** tracker.feed with datagrams of PER_DATAGRAM notifications: decoding included, per second */
  readonly datagrams: { readonly add: number; readonly replace: number; readonly delete: number }
  /** A full re-dump of ROUTES routes into the spare table, then the switch: ms */
  readonly redumpMs: number
  readonly lookup4PerSecond: number
  readonly lookup6PerSecond: number
  readonly gcDuringLookups: number
}

const pure = async (): Promise<PureFigures> => {
  const routes = makeRoutes()
  const adds: Array<Change> = routes.map((route) => ({
    type: Netlink.RTM_NEWROUTE,
    flags: Netlink.NLM_F_CREATE,
    route
  }))
  // the same prefixes with new gateways, as `ip route replace` notifies them
  const replaces: Array<Change> = routes.map((r, i) => {
    const gw = new Uint8Array(4)
    new DataView(gw.buffer).setUint32(0, rnd())
    const route = r.family === 4 ? { ...r, gateway: { family: 4 as const, addr: gw } } : v6Route(i, rnd())
    return { type: Netlink.RTM_NEWROUTE, flags: Netlink.NLM_F_REPLACE, route }
  })
  const deletes: Array<Change> = replaces.map((c) => ({ type: Netlink.RTM_DELROUTE, flags: 0, route: c.route }))

  // decoded messages straight into one table
  const set = new RouteMirror.RouteSet({ ifindex: TUN, table: undefined })
  const apply = (cs: ReadonlyArray<Change>) => () => {
    for (const c of cs) set.apply(c.type, c.flags, c.route)
  }
  apply(adds.slice(0, 2000))() // warm-up
  set.clear()
  const decoded = { add: rate(adds.length, apply(adds)), replace: rate(replaces.length, apply(replaces)), delete: 0 }
  const held = set.size().v4 + set.size().v6
  decoded.delete = rate(deletes.length, apply(deletes))
  if (set.size().v4 + set.size().v6 !== 0) throw new Error("routes left after deleting them all")

  // datagrams through the tracker, as the socket delivers them
  const m = RouteMirror.make({ ifindex: TUN, table: undefined })
  m.tracker.beginDump(1)
  m.tracker.feed(doneMessage(1))
  const feedAll = (ds: ReadonlyArray<Uint8Array>) => () => {
    for (const d of ds) m.tracker.feed(d)
  }
  const addDatagrams = datagramsOf(adds, 0)
  const replaceDatagrams = datagramsOf(replaces, 0)
  const deleteDatagrams = datagramsOf(deletes, 0)
  const datagrams = {
    add: rate(adds.length, feedAll(addDatagrams)),
    replace: rate(replaces.length, feedAll(replaceDatagrams)),
    delete: 0
  }

  // lookups through the mirror while it holds the table
  const addrs4 = Uint32Array.from({ length: LOOKUPS }, () => rnd())
  const addrs6 = new Uint8Array(16 * 4096)
  for (let i = 0; i < 4096; i++) {
    addrs6.set([0x20, 0x01, 0x0d, 0xb8], i * 16)
    new DataView(addrs6.buffer).setUint32(i * 16 + 4, (rnd() % ROUTES) | 3)
  }
  const gcs: Array<number> = []
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push(e.startTime)
  })
  observer.observe({ entryTypes: ["gc"] })
  const sink = new Int32Array(1)
  const lookups4 = () => {
    let acc = 0
    for (let i = 0; i < LOOKUPS; i++) acc = (acc + m.lookup4(addrs4[i]!)) | 0
    sink[0] = acc
  }
  const lookups6 = () => {
    let acc = 0
    for (let i = 0; i < LOOKUPS; i++) acc = (acc + m.lookup6(addrs6, (i & 4095) * 16)) | 0
    sink[0] = acc
  }
  lookups4()
  lookups6()
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  await new Promise((resolve) => setTimeout(resolve, 50))
  const t0 = performance.now()
  const lookup4PerSecond = rate(LOOKUPS, lookups4)
  const lookup6PerSecond = rate(LOOKUPS, lookups6)
  const t1 = performance.now()
  await new Promise((resolve) => setTimeout(resolve, 50))
  observer.disconnect()

  // a re-dump of the whole table, switched in at NLMSG_DONE
  const dump = datagramsOf(adds.map((c) => ({ ...c, flags: Netlink.NLM_F_MULTI })), 2)
  const r0 = performance.now()
  m.tracker.beginDump(2)
  for (const d of dump) m.tracker.feed(d)
  m.tracker.feed(doneMessage(2))
  const redumpMs = performance.now() - r0

  datagrams.delete = rate(deletes.length, feedAll(deleteDatagrams))
  return {
    routes: held,
    decoded,
    datagrams,
    redumpMs: Math.round(redumpMs),
    lookup4PerSecond,
    lookup6PerSecond,
    gcDuringLookups: gcs.filter((t) => t >= t0 && t <= t1).length
  }
}

// ---- live: RouteTableLive against the kernel, inside a namespace of our own

export interface LiveFigures {
  readonly changes: number
  readonly rcvbuf: number
  /** `ip -batch` wall time for the adds, and until the mirror held all of them */
  readonly addIpMs: number
  readonly addMirrorMs: number
  readonly deleteIpMs: number
  readonly deleteMirrorMs: number
  /** changes per second the mirror kept up with (changes / time until it caught up) */
  readonly addPerSecond: number
  readonly deletePerSecond: number
  /** dumps after the first: each one is an overrun (or a silent flush) recovered by re-reading */
  readonly redumps: number
}

const liveInner = async (changes: number, rcvbuf: number): Promise<LiveFigures> => {
  const Tun = await import("../src/layers/TunDeviceLive.js")
  const RouteLive = await import("../src/layers/RouteTableLive.js")
  const { TunDevice } = await import("../src/services/TunDevice.js")
  const scope = Effect.runSync(Scope.make())
  try {
    const tun = await Effect.runPromise(
      Scope.extend(Tun.make({ name: "kwb0", mtu: 1480, txQueueLen: 500, batch: 8, addresses: [] }), scope)
    )
    const mirror = await Effect.runPromise(
      Scope.extend(Effect.provideService(RouteLive.makeHandle({ table: undefined, rcvbuf }), TunDevice, tun), scope)
    )
    const dir = mkdtempSync(path.join(tmpdir(), "kwt-bench-routes-"))
    const batch = async (lines: Array<string>, want: number) => {
      const file = path.join(dir, "batch")
      writeFileSync(file, lines.join("\n") + "\n")
      const start = performance.now()
      let ipMs = 0
      const child = spawn("ip", ["-batch", file], { stdio: "ignore" })
      const exited = new Promise<void>((resolve) =>
        child.on("exit", () => {
          ipMs = performance.now() - start
          resolve()
        })
      )
      const size = () => mirror.service.size().v6
      while (size() !== want || ipMs === 0) await new Promise((resolve) => setTimeout(resolve, 1))
      const mirrorMs = performance.now() - start
      await exited
      return { ipMs, mirrorMs }
    }
    const prefix = (i: number) => `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`
    const adds = Array.from(
      { length: changes },
      (_, i) => `route add ${prefix(i)} via ::ffff:192.0.2.${1 + (i % 250)} dev kwb0 onlink`
    )
    const deletes = Array.from({ length: changes }, (_, i) => `route del ${prefix(i)} dev kwb0`)
    const dumpsBefore = mirror.stats().dumps
    // the kernel's own fe80::/64 on the device
    const base = mirror.service.size().v6
    const add = await batch(adds, base + changes)
    const del = await batch(deletes, base)
    rmSync(dir, { recursive: true, force: true })
    return {
      changes,
      rcvbuf,
      addIpMs: Math.round(add.ipMs),
      addMirrorMs: Math.round(add.mirrorMs),
      deleteIpMs: Math.round(del.ipMs),
      deleteMirrorMs: Math.round(del.mirrorMs),
      addPerSecond: Math.round(changes / (add.mirrorMs / 1000)),
      deletePerSecond: Math.round(changes / (del.mirrorMs / 1000)),
      redumps: mirror.stats().dumps - dumpsBefore
    }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

const live = (changes: number): Array<LiveFigures> => {
  if (process.getuid?.() !== 0) throw new Error("--live needs root (it creates a network namespace)")
  const ns = `kwt-bench-routes-${process.pid}`
  execFileSync("ip", ["netns", "add", ns])
  try {
    execFileSync("ip", ["-n", ns, "link", "set", "lo", "up"])
    const self = fileURLToPath(import.meta.url)
    // a small buffer, the default one, and one large enough that no notification is lost
    return [4 * 1024 * 1024, 16 * 1024 * 1024, 64 * 1024 * 1024].map((rcvbuf) => {
      const out = execFileSync(
        "ip",
        ["netns", "exec", ns, process.execPath, self, "--live-inner", String(changes), String(rcvbuf)],
        { encoding: "utf8", timeout: 300_000 }
      )
      const lines = out.trim().split("\n")
      return JSON.parse(lines[lines.length - 1]!) as LiveFigures
    })
  } finally {
    spawnSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 })
  }
}

const kilo = (n: number) => `${(n / 1e3).toFixed(0)} k/s`
const mega = (n: number) => `${(n / 1e6).toFixed(1)} M/s`

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]
if (isMain) {
  const argv = process.argv.slice(2)
  if (argv[0] === "--live-inner") {
    const r = await liveInner(Number(argv[1]), Number(argv[2]))
    process.stdout.write(JSON.stringify(r) + "\n")
  } else {
    const p = await pure()
    console.log(`pure mirror, ${p.routes} routes (3/4 IPv4 /16../32 in two tables, 1/4 IPv6 /64):`)
    console.log(`  decoded messages  add ${kilo(p.decoded.add)}  replace ${kilo(p.decoded.replace)}  ` +
      `delete ${kilo(p.decoded.delete)}`)
    console.log(`  datagrams         add ${kilo(p.datagrams.add)}  replace ${kilo(p.datagrams.replace)}  ` +
      `delete ${kilo(p.datagrams.delete)}  (${PER_DATAGRAM} messages each, decoding included)`)
    console.log(`  full re-dump of ${ROUTES} routes: ${p.redumpMs} ms`)
    console.log(`  lookups: IPv4 ${mega(p.lookup4PerSecond)}, IPv6 ${mega(p.lookup6PerSecond)}, ` +
      `GCs during them: ${p.gcDuringLookups}`)
    const liveAt = argv.indexOf("--live")
    const liveFigures = liveAt === -1 ? [] : live(Number(argv[liveAt + 1] ?? 20_000))
    for (const l of liveFigures) {
      console.log(`live, ${l.changes} IPv6 routes by ip -batch, rcvbuf ${l.rcvbuf / 2 ** 20} MiB: ` +
        `add: ip ${l.addIpMs} ms, mirror caught up at ${l.addMirrorMs} ms (${kilo(l.addPerSecond)}); ` +
        `delete: ip ${l.deleteIpMs} ms, mirror ${l.deleteMirrorMs} ms (${kilo(l.deletePerSecond)}); ` +
        `re-dumps ${l.redumps}`)
    }
    const dir = fileURLToPath(new URL("../../bench/results/", import.meta.url))
    mkdirSync(dir, { recursive: true })
    const result = { node: process.version, date: new Date().toISOString(), pure: p, live: liveFigures }
    writeFileSync(`${dir}routes.json`, JSON.stringify(result, null, 2) + "\n")
    console.log(`wrote ${dir}routes.json`)
  }
}
