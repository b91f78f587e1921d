/**
 * A benchmark-only variant of the daemon, to compare the data path on the main event loop with one worker thread per
 * direction (issue: "measure the candidates"). The main thread creates and configures the TUN device and the raw
 * sockets; two workers share those fds (fds belong to the process), and each runs the same Tunnel Stream pipeline
 * (src/Tunnel.ts) in its own Effect runtime, one with only the encapsulation direction, one with only the
 * decapsulation. Fixed remote address only: no route mirror, no host-address follower, no resolver, no control
 * socket, counters per thread. Command line: the subset `npm run bench` passes (-4 -6 -d -r ADDR -i NAME --address
 * A/N ... plus --no-offload).
 *
 *   node dist/bench/lib/ThreadedDaemon.js -4 -6 -d -r 192.0.2.2 -i ktun0 --address 198.51.100.1/30
 */
import { Effect, Either, Layer, Scope } from "effect"
import * as Fs from "node:fs"
import { fileURLToPath } from "node:url"
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads"
import type { RawConfig, TunnelConfig } from "../../src/domain/Config.js"
import { decode } from "../../src/domain/Config.js"
import { tunOptions } from "../../src/Kiwitun.js"
import * as HostAddressesTest from "../../src/layers/HostAddressesTest.js"
import * as RawSocketsLive from "../../src/layers/RawSocketsLive.js"
import * as ResolverTest from "../../src/layers/ResolverTest.js"
import * as TunDeviceLive from "../../src/layers/TunDeviceLive.js"
import { RawSockets } from "../../src/services/RawSocket.js"
import type { TunnelProto } from "../../src/services/RawSocket.js"
import { NO_ROUTE, RouteTable } from "../../src/services/RouteTable.js"
import { TunDevice } from "../../src/services/TunDevice.js"
import * as Tunnel from "../../src/Tunnel.js"

interface WorkerInput {
  readonly raw: RawConfig
  readonly direction: "encap" | "decap"
  readonly device: TunDeviceLive.AttachedDevice
  readonly sockets: Readonly<Partial<Record<TunnelProto, number>>>
}

const log = (line: string) => Fs.writeSync(2, `${new Date().toISOString()} threaded[${process.pid}]: ${line}\n`)

const parse = (argv: ReadonlyArray<string>): RawConfig => {
  const addresses: Array<string> = []
  let raw: { -readonly [K in keyof RawConfig]: RawConfig[K] } = {}
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!
    if (a === "-4") raw = { ...raw, v4: true }
    else if (a === "-6") raw = { ...raw, v6: true }
    else if (a === "-d") continue
    else if (a === "--no-offload") raw = { ...raw, noOffload: true }
    else if (a === "-r") raw = { ...raw, remote: argv[++i] }
    else if (a === "-i") raw = { ...raw, ifname: argv[++i] }
    else if (a === "--address") addresses.push(argv[++i]!)
    else if (a === "--control-socket") i++
    else throw new Error(`unsupported argument ${a}`)
  }
  return { ...raw, addresses }
}

const configOf = (raw: RawConfig): TunnelConfig =>
  Either.getOrThrowWith(decode(raw), (e) => new Error(e.message))

// ---------------------------------------------------------------------------------------------------------------
// A worker: one direction of the tunnel over the shared fds

const runWorker = (input: WorkerInput) => {
  const cfg = configOf(input.raw)
  const routes = Layer.succeed(RouteTable, { lookup4: () => NO_ROUTE, lookup6: () => NO_ROUTE, size: () => ({ v4: 0, v6: 0 }) })
  const sockets = Layer.succeed(RawSockets, {
    open: (proto) => {
      const fd = input.sockets[proto]
      return fd === undefined ? Effect.die(new Error(`no socket for ${proto}`)) : RawSocketsLive.attach(fd, proto)
    }
  })
  const tun = Layer.scoped(TunDevice, TunDeviceLive.attach(input.device))
  const deps = Layer.mergeAll(tun, sockets, routes, HostAddressesTest.layer(), ResolverTest.none)
  const program = Effect.gen(function*() {
    const tunnel = yield* Tunnel.make(cfg, { encap: input.direction === "encap", decap: input.direction === "decap" })
    parentPort!.postMessage("up")
    yield* tunnel.failure
  }).pipe(Effect.scoped, Effect.provide(deps))
  const fiber = Effect.runFork(program)
  parentPort!.on("message", (m) => {
    if (m === "stop") {
      Effect.runPromise(fiber.interruptAsFork(fiber.id())).then(() => process.exit(0), () => process.exit(0))
    }
  })
  fiber.addObserver((exit) => {
    if (exit._tag === "Failure") {
      log(`${input.direction} worker stopped: ${String(exit.cause)}`)
      parentPort!.postMessage("failed")
    }
  })
}

// ---------------------------------------------------------------------------------------------------------------
// The main thread: device, sockets, two workers, signals

const runMain = () => {
  const raw = parse(process.argv.slice(2))
  const cfg = configOf(raw)
  const self = fileURLToPath(import.meta.url)
  const program = Effect.gen(function*() {
    const device = yield* TunDeviceLive.open(tunOptions(cfg))
    const sockets: Partial<Record<TunnelProto, number>> = {}
    if (cfg.v4) sockets[4] = yield* RawSocketsLive.openFd(4)
    if (cfg.v6) sockets[41] = yield* RawSocketsLive.openFd(41)
    const workers = (["encap", "decap"] as const).map((direction) =>
      new Worker(self, { workerData: { raw, direction, device, sockets } satisfies WorkerInput })
    )
    const scope = yield* Effect.scope
    yield* Scope.addFinalizer(
      scope,
      Effect.promise(() =>
        Promise.all(workers.map((w) =>
          new Promise<void>((resolve) => {
            w.once("exit", () => resolve())
            w.postMessage("stop")
          })
        ))
      )
    )
    yield* Effect.async<void, Error>((resume) => {
      let up = 0
      for (const w of workers) {
        w.on("message", (m) => {
          if (m === "up" && ++up === workers.length) {
            log(`tunnel up remote=${raw.remote ?? ""} threads=2 (encap, decap) tunnel=${device.name}`)
            resume(Effect.void)
          }
          if (m === "failed") resume(Effect.fail(new Error("a worker failed")))
        })
        w.on("error", (e) => resume(Effect.fail(e)))
      }
    })
    // the benchmark asks for counters with SIGUSR1 (its default action would end the process); they stay per thread
    process.on("SIGUSR1", () => log("counters"))
    yield* Effect.async<void>((resume) => {
      const stop = () => resume(Effect.void)
      process.once("SIGTERM", stop)
      process.once("SIGINT", stop)
    })
  }).pipe(Effect.scoped)
  Effect.runPromise(program).then(
    () => process.exit(0),
    (e) => {
      log(`failed: ${String(e)}`)
      process.exit(1)
    }
  )
}

if (isMainThread) runMain()
else runWorker(workerData as WorkerInput)
