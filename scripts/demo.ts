/**
 * Demo: two hosts (network namespaces) joined by a veth "underlay", a kiwitun daemon on each carrying IPv4 (4in4)
 * and IPv6 (6in4) over one TUN device. Pings the bare underlay, then both inner families through the tunnel, and
 * prints round-trip times and the daemons' counters. Everything it creates is removed when it ends, also on
 * Ctrl-C (runMain interrupts the main fiber on SIGINT, which runs the scope's finalizers).
 *
 *   npm run demo          (as root, with iproute2 and iputils-ping)
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Data, Effect, Option } from "effect"
import * as Netns from "./lib/Netns.js"

class DemoError extends Data.TaggedError("DemoError")<{ readonly message: string }> {}

const pad = (text: string, width: number): string => text.padEnd(width)

const rttSummary = (rtts: ReadonlyArray<number>): string => {
  if (rtts.length === 0) return "-"
  const min = Math.min(...rtts)
  const max = Math.max(...rtts)
  const avg = rtts.reduce((sum, r) => sum + r, 0) / rtts.length
  return `min ${min.toFixed(3)} / avg ${avg.toFixed(3)} / max ${max.toFixed(3)} ms`
}

const COUNT = 5

const program = Effect.gen(function*() {
  const prerequisites = yield* Netns.checkPrerequisites
  if (!prerequisites.ok) {
    return yield* new DemoError({ message: `cannot run the demo: ${prerequisites.missing.join("; ")}` })
  }

  yield* Console.log("Setting up two namespaces joined by veth (underlay 192.0.2.1 <-> 192.0.2.2)...")
  const { a, b, veth } = yield* Netns.twoHosts()
  yield* Console.log(`  host A: namespace ${a.ns.name}, ${veth.nameA} 192.0.2.1/24, kiwitun ${a.args.join(" ")}`)
  yield* Console.log(`  host B: namespace ${b.ns.name}, ${veth.nameB} 192.0.2.2/24, kiwitun ${b.args.join(" ")}`)
  yield* Console.log(
    `  both tunnels are up (${a.ifname}: ${a.inner4}/30 ${a.inner6}/64 <-> ${b.inner4}/30 ${b.inner6}/64)`
  )
  yield* Console.log("")

  const targets = [
    { label: "underlay (bare veth)", target: b.underlay },
    { label: "IPv4 through the tunnel (4in4)", target: b.inner4 },
    { label: "IPv6 through the tunnel (6in4)", target: b.inner6 }
  ]
  yield* Console.log(`Pinging from A, ${COUNT} packets each:`)
  let failures = 0
  for (const { label, target } of targets) {
    const result = yield* Netns.ping(a.ns, target, { count: COUNT })
    if (result.received !== COUNT) failures++
    yield* Console.log(
      `  ${pad(label, 32)} ${pad(target, 16)} ${result.received}/${result.transmitted} replies  ` +
        rttSummary(result.rtts)
    )
  }
  yield* Console.log("")

  yield* Console.log("Daemon counters (SIGUSR1):")
  for (const [name, host] of [["A", a], ["B", b]] as const) {
    const daemon = yield* Netns.daemonOf(host)
    const { counters } = yield* Netns.requestCounters(daemon)
    const text = Object.entries(counters).map(([k, v]) => `${k}=${v}`).join(" ")
    yield* Console.log(`  ${name}: ${text}`)
  }
  yield* Console.log("")

  if (failures > 0) {
    const lines = yield* Effect.map(Effect.all(
      [a, b].map((host) => Option.match(host.daemon, { onNone: () => Effect.succeed([]), onSome: (d) => d.lines }))
    ), (all) => all.flat().slice(-20))
    yield* Console.log(`Last daemon log lines:\n${lines.join("\n")}`)
    return yield* new DemoError({ message: `${failures} of ${targets.length} pings lost replies` })
  }
})

const main = Effect.scoped(program).pipe(
  Effect.zipRight(Console.log("Removed the namespaces, the veth pair and both daemons.")),
  Effect.onInterrupt(() => Console.log("\nInterrupted: removed everything the demo created.")),
  Effect.catchTags({
    DemoError: (e) => Effect.zipRight(Console.error(`demo: ${e.message}`), Effect.fail(e)),
    NetnsError: (e) => Effect.zipRight(Console.error(`demo: ${e.message}`), Effect.fail(e))
  })
)

NodeRuntime.runMain(main, { disableErrorReporting: true })
