/**
 * Network-namespace harness for the demo, the benchmarks and the integration tests.
 *
 * Every resource (namespace, veth pair, process) is acquired with `Effect.acquireRelease`, so closing the scope
 * removes it whether the work succeeded, failed or was interrupted. Nothing is ever created in the root namespace:
 * veth pairs are created from inside the first namespace with their peer moved straight into the second.
 */
import * as ChildProcess from "node:child_process"
import { existsSync, mkdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import type { Scope } from "effect"
import { Data, Deferred, Duration, Effect, Option, Schedule, Schema } from "effect"
import { StatusReportJson } from "../../src/domain/Status.js"
import type { FloodReport, SendPlan, SendReport } from "./craft.js"

export class NetnsError extends Data.TaggedError("NetnsError")<{
  /**
   * spawn: the command could not be started; exit: it exited with a non-zero status; timeout: it did not finish
   * (or a wait did not succeed) in time; exited: a long-running process ended while we waited for it; parse: its
   * output was not what we expected; signal: it could not be signalled.
   */
  readonly reason: "spawn" | "exit" | "timeout" | "exited" | "parse" | "signal"
  readonly command: string
  readonly message: string
}> {}

// ---------------------------------------------------------------------------------------------------------------
// Paths

const findRoot = (from: string): string => {
  let dir = from
  for (;;) {
    if (existsSync(Path.join(dir, "package.json")) && existsSync(Path.join(dir, "bin", "kiwitun"))) return dir
    const parent = Path.dirname(dir)
    if (parent === dir) return Path.resolve(from, "..", "..")
    dir = parent
  }
}

/** The repository root (works from scripts/lib and from dist/scripts/lib). */
export const repoRoot: string = findRoot(Path.dirname(fileURLToPath(import.meta.url)))

/** The command that starts the daemon: bin/kiwitun, the shell wrapper running dist/src/main.js with its Node flags. */
export const kiwitunCommand: ReadonlyArray<string> = [Path.join(repoRoot, "bin", "kiwitun")]

/** The compiled TCP sink/source helper (see tcpPeer.ts). */
export const tcpPeerScript: string = Path.join(repoRoot, "dist", "scripts", "lib", "tcpPeer.js")

// ---------------------------------------------------------------------------------------------------------------
// Processes

export interface ProcessExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** `Date.now()` when the kernel reported the exit. */
  readonly at: number
}

export interface Process {
  readonly pid: number
  readonly command: string
  /** stdout and stderr so far (the last 20,000 lines), in arrival order, a trailing partial line included. */
  readonly lines: Effect.Effect<ReadonlyArray<string>>
  readonly stdout: Effect.Effect<string>
  readonly stderr: Effect.Effect<string>
  /** The number of complete lines seen so far: pass it as `after` to wait only for newer lines. */
  readonly mark: Effect.Effect<number>
  /** Waits for a line matching `pattern` (among lines with index >= `after`); fails if the process exits first. */
  readonly waitForLine: (
    pattern: RegExp,
    options?: { readonly after?: number; readonly timeout?: Duration.DurationInput }
  ) => Effect.Effect<string, NetnsError>
  readonly exited: Effect.Effect<Option.Option<ProcessExit>>
  /** Waits for the exit (and for its output to be fully read). */
  readonly exit: Effect.Effect<ProcessExit>
  /** Sends a signal; does nothing if the process has already exited. */
  readonly signal: (signal: NodeJS.Signals) => Effect.Effect<void, NetnsError>
}

export interface StartOptions {
  /** Time between SIGTERM and SIGKILL when the scope closes (default 2 seconds). */
  readonly grace?: Duration.DurationInput
  /** Bytes written to stdin, which is then closed; stdin is /dev/null when absent. */
  readonly input?: string | Uint8Array
}

const MAX_LINES = 20_000

/** Runs `check` every `every` until it yields a value (callers bound it with a timeout). */
export const pollUntilSome = <A, E, R>(
  check: Effect.Effect<Option.Option<A>, E, R>,
  every: Duration.DurationInput
): Effect.Effect<A, E, R> =>
  Effect.flatMap(check, (found) =>
    Option.isSome(found)
      ? Effect.succeed(found.value)
      : Effect.zipRight(Effect.sleep(every), Effect.suspend(() => pollUntilSome(check, every))))

const commandLine = (argv: ReadonlyArray<string>): string => argv.join(" ")

const spawnProcess = (argv: ReadonlyArray<string>, options: StartOptions) =>
  Effect.gen(function*() {
    const command = commandLine(argv)
    const exitDeferred = yield* Deferred.make<ProcessExit>()
    const closed = yield* Deferred.make<void>()
    const [file, ...args] = argv
    if (file === undefined) {
      return yield* new NetnsError({ reason: "spawn", command, message: "empty command line" })
    }
    // Output is kept in this closure only: it belongs to this one process. `dropped` counts lines trimmed from
    // the front, so marks stay valid line numbers.
    const out: Array<string> = []
    const err: Array<string> = []
    const lines: Array<string> = []
    const state = { stdout: "", stderr: "", dropped: 0 }
    const collect = (stream: "stdout" | "stderr", sink: Array<string>) => (chunk: Buffer) => {
      const text = chunk.toString("utf8")
      sink.push(text)
      const parts = (state[stream] + text).split("\n")
      state[stream] = parts.pop() ?? ""
      for (const line of parts) lines.push(line)
      if (lines.length > MAX_LINES) {
        const excess = lines.length - MAX_LINES
        lines.splice(0, excess)
        state.dropped += excess
      }
    }

    const child = yield* Effect.async<ChildProcess.ChildProcess, NetnsError>((resume) => {
      const handle = ChildProcess.spawn(file, args, {
        stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"]
      })
      // Listeners go on before this callback returns: a process that exits at once must not be missed.
      handle.once("error", (cause) => {
        resume(new NetnsError({ reason: "spawn", command, message: `cannot start ${command}: ${cause.message}` }))
      })
      handle.once("spawn", () => resume(Effect.succeed(handle)))
      handle.once("exit", (code, signal) => {
        Deferred.unsafeDone(exitDeferred, Effect.succeed({ code, signal, at: Date.now() }))
      })
      handle.once("close", () => Deferred.unsafeDone(closed, Effect.void))
      handle.stdout?.on("data", collect("stdout", out))
      handle.stderr?.on("data", collect("stderr", err))
      if (options.input !== undefined && handle.stdin !== null) {
        handle.stdin.on("error", () => undefined) // EPIPE when the process ignores its input: not our concern
        handle.stdin.end(options.input)
      }
    })
    const pid = child.pid ?? -1

    /** Lines from line number `from` on (a trailing partial line of either stream included). */
    const linesFrom = (from: number): ReadonlyArray<string> => {
      const tail = [state.stdout, state.stderr].filter((p) => p.length > 0)
      return [...lines.slice(Math.max(from - state.dropped, 0)), ...tail]
    }
    const allLines = Effect.sync(() => linesFrom(0))
    const exited = Deferred.poll(exitDeferred).pipe(
      Effect.flatMap(Option.match({
        onNone: () => Effect.succeed(Option.none<ProcessExit>()),
        onSome: (value) => Effect.map(value, Option.some)
      }))
    )
    const exit = Deferred.await(exitDeferred).pipe(
      Effect.tap(() => Deferred.await(closed).pipe(Effect.interruptible, Effect.timeout("1 second"), Effect.ignore))
    )
    const signal = (sig: NodeJS.Signals): Effect.Effect<void, NetnsError> =>
      Effect.flatMap(Deferred.isDone(exitDeferred), (done) =>
        done ? Effect.void : Effect.try({
          try: () => {
            process.kill(pid, sig)
          },
          catch: (cause) =>
            new NetnsError({
              reason: "signal",
              command,
              message: `cannot send ${sig} to ${pid}: ${cause instanceof Error ? cause.message : String(cause)}`
            })
        }))
    const waitForLine = (
      pattern: RegExp,
      opts?: { readonly after?: number; readonly timeout?: Duration.DurationInput }
    ): Effect.Effect<string, NetnsError> => {
      const after = opts?.after ?? 0
      const timeout = opts?.timeout ?? "10 seconds"
      const check = Effect.gen(function*() {
        const found = linesFrom(after).find((line) => pattern.test(line))
        if (found !== undefined) return Option.some(found)
        const status = yield* exited
        if (Option.isSome(status)) {
          yield* exit // let the pipes drain, then look once more
          const last = linesFrom(after).find((line) => pattern.test(line))
          if (last !== undefined) return Option.some(last)
          return yield* new NetnsError({
            reason: "exited",
            command,
            message: `${command} exited (code ${status.value.code}, signal ${status.value.signal}) before printing ` +
              `${pattern}; output:\n${(yield* allLines).join("\n")}`
          })
        }
        return Option.none<string>()
      })
      return pollUntilSome(check, "25 millis").pipe(
        Effect.interruptible,
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () =>
            new NetnsError({
              reason: "timeout",
              command,
              message: `${command} did not print ${pattern} within ${Duration.format(timeout)}; output:\n` +
                linesFrom(0).join("\n")
            })
        })
      )
    }
    const proc: Process = {
      pid,
      command,
      lines: allLines,
      stdout: Effect.sync(() => out.join("")),
      stderr: Effect.sync(() => err.join("")),
      mark: Effect.sync(() => state.dropped + lines.length),
      waitForLine,
      exited,
      exit,
      signal
    }
    return proc
  })

/** SIGTERM, then SIGKILL after the grace period; bounded, never fails. */
const stopProcess = (proc: Process, grace: Duration.DurationInput) =>
  Effect.gen(function*() {
    if (Option.isSome(yield* proc.exited)) {
      yield* proc.exit.pipe(Effect.interruptible, Effect.timeout("1 second"), Effect.ignore)
      return
    }
    yield* Effect.ignore(proc.signal("SIGTERM"))
    const gone = yield* proc.exit.pipe(Effect.interruptible, Effect.timeout(grace), Effect.option)
    if (Option.isSome(gone)) return
    yield* Effect.logWarning(`${proc.command} (pid ${proc.pid}) ignored SIGTERM, sending SIGKILL`)
    yield* Effect.ignore(proc.signal("SIGKILL"))
    yield* proc.exit.pipe(Effect.interruptible, Effect.timeout("5 seconds"), Effect.ignore)
  })

/**
 * Starts a process (in the current namespace) and owns it: when the scope closes it gets SIGTERM, then SIGKILL
 * after the grace period.
 */
export const start = (
  argv: ReadonlyArray<string>,
  options: StartOptions = {}
): Effect.Effect<Process, NetnsError, Scope.Scope> =>
  Effect.acquireRelease(spawnProcess(argv, options), (proc) => stopProcess(proc, options.grace ?? "2 seconds"))

export interface RunResult {
  readonly command: string
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
  readonly durationMs: number
}

export interface RunOptions {
  /** Default 30 seconds; on expiry the command is killed and the run fails with reason "timeout". */
  readonly timeout?: Duration.DurationInput
  readonly input?: string | Uint8Array
}

/** Runs a command to completion (in the current namespace), capturing its output and exit status. */
export const run = (argv: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<RunResult, NetnsError> =>
  Effect.scoped(Effect.gen(function*() {
    const began = Date.now()
    const proc = yield* start(argv, options.input === undefined ? { grace: "1 second" } : {
      grace: "1 second",
      input: options.input
    })
    const timeout = options.timeout ?? "30 seconds"
    const status = yield* proc.exit.pipe(
      Effect.interruptible, // so the timeout also works when this runs inside a finalizer
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new NetnsError({
            reason: "timeout",
            command: proc.command,
            message: `${proc.command} did not finish within ${Duration.format(timeout)}`
          })
      }),
      Effect.catchAll((e) =>
        Effect.flatMap(proc.lines, (partial) =>
          Effect.fail(
            new NetnsError({
              reason: e.reason,
              command: e.command,
              message: `${e.message}; output so far:\n${partial.join("\n")}`
            })
          ))
      )
    )
    return {
      command: proc.command,
      code: status.code,
      signal: status.signal,
      stdout: yield* proc.stdout,
      stderr: yield* proc.stderr,
      durationMs: status.at - began
    }
  }))

/** Like `run`, but a non-zero exit is a failure carrying the command's stderr. */
export const runOk = (argv: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<RunResult, NetnsError> =>
  Effect.flatMap(run(argv, options), (result) =>
    result.code === 0 ? Effect.succeed(result) : Effect.fail(
      new NetnsError({
        reason: "exit",
        command: result.command,
        message: `${result.command} exited with ${result.code ?? result.signal}: ${
          (result.stderr || result.stdout).trim()
        }`
      })
    ))

// ---------------------------------------------------------------------------------------------------------------
// Namespaces

export interface Namespace {
  readonly name: string
}

/** Prefix of every namespace this process creates: `kwt-<pid>-`. */
export const namespacePrefix = `kwt-${process.pid}-`

/** Names of the existing namespaces (`ip netns list` prints `name` or `name (id: N)`). */
export const listNamespaces: Effect.Effect<ReadonlyArray<string>, NetnsError> = Effect.map(
  runOk(["ip", "netns", "list"], { timeout: "10 seconds" }),
  (r) => r.stdout.split("\n").map((line) => line.trim().split(" ")[0] ?? "").filter((name) => name.length > 0)
)

const nextNamespaceName = Effect.map(listNamespaces, (names) => {
  const used = names.filter((n) => n.startsWith(namespacePrefix))
    .map((n) => Number(n.slice(namespacePrefix.length)))
    .filter(Number.isInteger)
  return `${namespacePrefix}${used.length === 0 ? 0 : Math.max(...used) + 1}`
})

/** Runs `argv` inside the namespace (`ip netns exec`, which execs the command: its pid is the command's). */
export const inNamespace = (ns: Namespace, argv: ReadonlyArray<string>): ReadonlyArray<string> => [
  "ip",
  "netns",
  "exec",
  ns.name,
  ...argv
]

export const exec = (ns: Namespace, argv: ReadonlyArray<string>, options: RunOptions = {}) =>
  run(inNamespace(ns, argv), options)

export const execOk = (ns: Namespace, argv: ReadonlyArray<string>, options: RunOptions = {}) =>
  runOk(inNamespace(ns, argv), options)

/** `ip -n <ns> ...`, failing on a non-zero exit. */
export const ip = (ns: Namespace, ...args: ReadonlyArray<string>) =>
  runOk(["ip", "-n", ns.name, ...args], { timeout: "10 seconds" })

/** Starts a long-running process inside the namespace, owned by the scope (SIGTERM, then SIGKILL). */
export const spawn = (ns: Namespace, argv: ReadonlyArray<string>, options: StartOptions = {}) =>
  start(inNamespace(ns, argv), options)

const deleteNamespace = (name: string) =>
  Effect.gen(function*() {
    // Anything still running in our namespace was started by us through this harness and escaped its own
    // finalizer; a process inside would keep the namespace (and its devices) alive after `ip netns del`.
    const pids = yield* runOk(["ip", "netns", "pids", name], { timeout: "5 seconds" }).pipe(
      Effect.map((r) => r.stdout.split("\n").map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0)),
      Effect.orElseSucceed((): ReadonlyArray<number> => [])
    )
    for (const pid of pids) {
      yield* Effect.logWarning(`killing leftover pid ${pid} in namespace ${name}`)
      yield* Effect.try(() => process.kill(pid, "SIGKILL")).pipe(Effect.ignore)
    }
    if (pids.length > 0) yield* Effect.sleep("200 millis")
    yield* runOk(["ip", "netns", "del", name], { timeout: "10 seconds" }).pipe(
      Effect.retry(Schedule.spaced("200 millis").pipe(Schedule.intersect(Schedule.recurs(5)))),
      Effect.catchAll((e) => Effect.logWarning(`could not delete namespace ${name}: ${e.message}`))
    )
  })

/**
 * A fresh namespace named `kwt-<pid>-<n>` with loopback up, deleted when the scope closes. The counter is the
 * next free number among the existing namespaces, so the name is unique even next to leftovers.
 */
export const namespace: Effect.Effect<Namespace, NetnsError, Scope.Scope> = Effect.acquireRelease(
  Effect.gen(function*() {
    const name = yield* nextNamespaceName
    yield* runOk(["ip", "netns", "add", name], { timeout: "10 seconds" })
    return { name }
  }).pipe(
    // Two fibers may pick the same number; `ip netns add` refuses the second, which then tries the next one.
    Effect.retry(Schedule.recurs(5))
  ),
  (ns) => deleteNamespace(ns.name)
).pipe(Effect.tap((ns) => ip(ns, "link", "set", "lo", "up")))

// ---------------------------------------------------------------------------------------------------------------
// Links

const LinkInfo = Schema.Struct({
  ifname: Schema.String,
  flags: Schema.Array(Schema.String),
  mtu: Schema.Number,
  operstate: Schema.optional(Schema.String)
})
export type LinkInfo = typeof LinkInfo.Type
const LinkList = Schema.parseJson(Schema.Array(LinkInfo))

/** The namespace's links, from `ip -j link show`. */
export const links = (ns: Namespace): Effect.Effect<ReadonlyArray<LinkInfo>, NetnsError> =>
  ip(ns, "-j", "link", "show").pipe(
    Effect.flatMap((r) =>
      Schema.decodeUnknown(LinkList)(r.stdout).pipe(
        Effect.mapError((e) =>
          new NetnsError({ reason: "parse", command: r.command, message: `unexpected ip -j output: ${e.message}` })
        )
      )
    )
  )

/** The link named `ifname`, if it exists. */
export const link = (ns: Namespace, ifname: string): Effect.Effect<Option.Option<LinkInfo>, NetnsError> =>
  Effect.map(links(ns), (all) => Option.fromNullable(all.find((l) => l.ifname === ifname)))

/** Waits until `ifname` exists and is administratively up. */
export const waitLinkUp = (ns: Namespace, ifname: string, timeout: Duration.DurationInput = "10 seconds") =>
  pollUntilSome(Effect.map(link(ns, ifname), Option.filter((l) => l.flags.includes("UP"))), "50 millis").pipe(
    Effect.interruptible,
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () =>
        new NetnsError({
          reason: "timeout",
          command: `ip -n ${ns.name} link show ${ifname}`,
          message: `${ifname} in ${ns.name} was not up within ${Duration.format(timeout)}`
        })
    })
  )

export interface VethOptions {
  readonly a: Namespace
  readonly b: Namespace
  /** Interface names inside each namespace (default "veth0" on both sides). */
  readonly nameA?: string
  readonly nameB?: string
  /** CIDR addresses; none when absent. */
  readonly addressA?: string
  readonly addressB?: string
  readonly mtu?: number
}

export interface Veth {
  readonly a: Namespace
  readonly b: Namespace
  readonly nameA: string
  readonly nameB: string
}

/** A veth pair joining two namespaces, addressed and up; deleted when the scope closes. */
export const veth = (options: VethOptions): Effect.Effect<Veth, NetnsError, Scope.Scope> => {
  const pair: Veth = { a: options.a, b: options.b, nameA: options.nameA ?? "veth0", nameB: options.nameB ?? "veth0" }
  return Effect.acquireRelease(
    // Created inside A with the peer placed directly in B, so the root namespace never sees either end.
    ip(pair.a, "link", "add", pair.nameA, "type", "veth", "peer", "name", pair.nameB, "netns", pair.b.name),
    () => ip(pair.a, "link", "del", pair.nameA).pipe(Effect.ignore) // already gone if a namespace went first
  ).pipe(
    Effect.zipRight(Effect.forEach([
      [pair.a, pair.nameA, options.addressA] as const,
      [pair.b, pair.nameB, options.addressB] as const
    ], ([ns, name, address]) =>
      Effect.gen(function*() {
        if (options.mtu !== undefined) yield* ip(ns, "link", "set", name, "mtu", String(options.mtu))
        if (address !== undefined) yield* ip(ns, "address", "add", address, "dev", name)
        yield* ip(ns, "link", "set", name, "up")
      }))),
    Effect.as(pair)
  )
}

/** Sets a link's MTU. */
export const setMtu = (ns: Namespace, ifname: string, mtu: number) =>
  Effect.asVoid(ip(ns, "link", "set", ifname, "mtu", String(mtu)))

// ---------------------------------------------------------------------------------------------------------------
// The daemon

export interface KiwitunOptions {
  /** Wait for this device to be up after "tunnel up" (default: the `-i`/`--ifname` argument, if any). */
  readonly ifname?: string
  /** Wait for "tunnel up" (default true). */
  readonly waitUp?: boolean
  readonly startTimeout?: Duration.DurationInput
  /** Default: `kiwitunCommand` (bin/kiwitun). */
  readonly command?: ReadonlyArray<string>
  readonly grace?: Duration.DurationInput
}

const ifnameArg = (args: ReadonlyArray<string>): string | undefined => {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? ""
    if ((arg === "-i" || arg === "--ifname") && i + 1 < args.length) return args[i + 1]
    if (arg.startsWith("--ifname=")) return arg.slice("--ifname=".length)
  }
  return undefined
}

/**
 * Starts the real daemon in a namespace, as a user would, and (by default) waits until it logs "tunnel up" and
 * its device is up. Stopped with SIGTERM (then SIGKILL) when the scope closes.
 */
export const kiwitun = (
  ns: Namespace,
  args: ReadonlyArray<string>,
  options: KiwitunOptions = {}
): Effect.Effect<Process, NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const argv = [...(options.command ?? kiwitunCommand), ...args]
    const proc = yield* spawn(ns, argv, { grace: options.grace ?? "2 seconds" })
    if (options.waitUp === false) return proc
    const timeout = options.startTimeout ?? "20 seconds"
    yield* proc.waitForLine(/tunnel up/, { timeout })
    const ifname = options.ifname ?? ifnameArg(args)
    if (ifname !== undefined) yield* waitLinkUp(ns, ifname, timeout)
    return proc
  })

/** The daemon logs its counters on one line starting with this word (on SIGUSR1 and at exit). */
export const COUNTER_LINE = /\bcounters\b/

/**
 * Counters as logged by the daemon: every `name=<integer>` pair after the word "counters" on the line
 * (`counters tun_rx=3 encap_packets=3 ... encap_no_route=1`). Later values win.
 */
export const parseCounters = (line: string): Readonly<Record<string, number>> => {
  const counters: Record<string, number> = {}
  const at = line.search(COUNTER_LINE)
  for (const match of line.slice(Math.max(at, 0)).matchAll(/\b([a-z][a-z0-9_]*)=(\d+)(?![\w.:-])/g)) {
    const [, name, value] = match
    if (name !== undefined && value !== undefined) counters[name] = Number(value)
  }
  return counters
}

/** The counters of the last counter line among `lines`, if any. */
export const lastCounters = (lines: ReadonlyArray<string>): Option.Option<Readonly<Record<string, number>>> =>
  Option.map(Option.fromNullable([...lines].reverse().find((l) => COUNTER_LINE.test(l))), parseCounters)

/** Asks a running daemon for its counters (SIGUSR1) and returns them with the line it logged. */
export const requestCounters = (proc: Process, timeout: Duration.DurationInput = "5 seconds") =>
  Effect.gen(function*() {
    const mark = yield* proc.mark
    yield* proc.signal("SIGUSR1")
    const line = yield* proc.waitForLine(COUNTER_LINE, { after: mark, timeout })
    return { line, counters: parseCounters(line) }
  })

/** The counters the daemon logged when it exited (waits for the exit). */
export const exitCounters = (proc: Process) =>
  Effect.gen(function*() {
    yield* proc.exit
    const lines = yield* proc.lines
    return Option.getOrElse(lastCounters(lines), (): Readonly<Record<string, number>> => ({}))
  })

// ---------------------------------------------------------------------------------------------------------------
// Traffic

export interface PingOptions {
  readonly count?: number
  /** Seconds between pings (ping -i); 0.2 is the smallest a non-root user may use; we are root. */
  readonly interval?: number
  /**
   * ping -f -q: each ping leaves as soon as the previous reply is in (or 10 ms after it left), and only the summary
   * is printed (no per-ping `time=`: `rtts` is empty, `average` tells). Replaces `interval`.
   */
  readonly flood?: boolean
  /** ICMP payload size (ping -s). */
  readonly size?: number
  /** `-M do`: set DF (IPv4) and forbid local fragmentation. */
  readonly dontFragment?: boolean
  /** Seconds to wait for each reply (ping -W). */
  readonly wait?: number
  /** Overall deadline in seconds (ping -w). */
  readonly deadline?: number
  readonly family?: 4 | 6
  readonly timeout?: Duration.DurationInput
}

export interface PingResult extends RunResult {
  readonly transmitted: number
  readonly received: number
  /** Round-trip times of the replies, in milliseconds. */
  readonly rtts: ReadonlyArray<number>
  /** The average round-trip time of ping's summary line, in milliseconds (NaN without one: no replies). */
  readonly average: number
  /** stdout and stderr together. */
  readonly output: string
}

export const parsePing = (output: string) => {
  const summary = /(\d+) packets transmitted, (\d+) received/.exec(output)
  const rtts = [...output.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]))
  // "rtt min/avg/max/mdev = 0.041/0.052/0.071/0.010 ms"
  const average = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(output)
  return {
    transmitted: Number(summary?.[1] ?? 0),
    received: Number(summary?.[2] ?? 0),
    rtts,
    average: average === null ? Number.NaN : Number(average[1])
  }
}

/** Runs iputils `ping` in the namespace; a non-zero exit (lost replies) is a result, not a failure. */
export const ping = (
  ns: Namespace,
  target: string,
  options: PingOptions = {}
): Effect.Effect<PingResult, NetnsError> => {
  const argv = [
    "ping",
    ...(options.family === 6 || (options.family === undefined && target.includes(":")) ? ["-6"] : ["-4"]),
    "-n",
    "-c",
    String(options.count ?? 3),
    ...(options.flood === true ? ["-f", "-q"] : ["-i", String(options.interval ?? 0.2)]),
    "-W",
    String(options.wait ?? 2),
    ...(options.deadline !== undefined ? ["-w", String(options.deadline)] : []),
    ...(options.size !== undefined ? ["-s", String(options.size)] : []),
    ...(options.dontFragment === true ? ["-M", "do"] : []),
    target
  ]
  return Effect.map(exec(ns, argv, { timeout: options.timeout ?? "30 seconds" }), (r) => {
    const output = `${r.stdout}\n${r.stderr}`
    return { ...r, ...parsePing(output), output }
  })
}

const PeerReport = Schema.parseJson(Schema.Struct({ bytes: Schema.Number, sha256: Schema.String }))
export type PeerReport = typeof PeerReport.Type

const decodeReport = (command: string, text: string) =>
  Schema.decodeUnknown(PeerReport)(text.trim().split("\n").pop() ?? "").pipe(
    Effect.mapError((e) => new NetnsError({ reason: "parse", command, message: `bad report ${text}: ${e.message}` }))
  )

export interface TcpTransferOptions {
  readonly from: Namespace
  readonly to: Namespace
  /** Address of the receiver (in `to`) that the sender connects to. */
  readonly host: string
  readonly port?: number
  readonly bytes: number
  readonly timeout?: Duration.DurationInput
}

export interface TcpTransferResult {
  readonly sent: PeerReport
  readonly received: PeerReport
  readonly durationMs: number
}

/**
 * Sends `bytes` random bytes over one TCP connection from `from` to `host` in `to`, with the tcpPeer helper at
 * both ends; each side reports the byte count and SHA-256 of what it sent or received.
 */
export const tcpTransfer = (options: TcpTransferOptions): Effect.Effect<TcpTransferResult, NetnsError> =>
  Effect.scoped(Effect.gen(function*() {
    const port = String(options.port ?? 5201)
    const timeout = options.timeout ?? "60 seconds"
    const listen = options.host.includes(":") ? "::" : "0.0.0.0"
    const sink = yield* spawn(options.to, [process.execPath, tcpPeerScript, "sink", listen, port])
    yield* sink.waitForLine(/^listening/, { timeout: "10 seconds" })
    const source = yield* execOk(options.from, [
      process.execPath,
      tcpPeerScript,
      "source",
      options.host,
      port,
      String(options.bytes)
    ], { timeout })
    const sinkExit = yield* sink.exit.pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: "10 seconds",
        onTimeout: () =>
          new NetnsError({ reason: "timeout", command: sink.command, message: "sink did not finish after the source" })
      })
    )
    const sinkOut = yield* sink.stdout
    if (sinkExit.code !== 0) {
      return yield* new NetnsError({
        reason: "exit",
        command: sink.command,
        message: `sink exited with ${sinkExit.code ?? sinkExit.signal}: ${yield* sink.stderr}`
      })
    }
    return {
      sent: yield* decodeReport(source.command, source.stdout),
      received: yield* decodeReport(sink.command, sinkOut),
      durationMs: source.durationMs
    }
  }))

// ---------------------------------------------------------------------------------------------------------------
// Scenario: two hosts joined by veth, a kiwitun daemon on each

export interface TunnelHost {
  readonly ns: Namespace
  /** Underlay (veth) IPv4 address. */
  readonly underlay: string
  readonly inner4: string
  readonly inner6: string
  readonly ifname: string
  /** Running daemon, or none when `startDaemons` was false. */
  readonly daemon: Option.Option<Process>
  /** The daemon's arguments (what `twoHosts` used or would use). */
  readonly args: ReadonlyArray<string>
}

export interface TwoHosts {
  readonly a: TunnelHost
  readonly b: TunnelHost
  readonly veth: Veth
}

export interface TwoHostsOptions {
  /** Underlay veth MTU on both sides (default 1500). */
  readonly underlayMtu?: number
  /** Extra daemon arguments for both hosts. */
  readonly extraArgs?: ReadonlyArray<string>
  /** Start the daemons (default true). */
  readonly startDaemons?: boolean
  readonly ifname?: string
  /** The command that starts each daemon (default `kiwitunCommand`). */
  readonly command?: ReadonlyArray<string>
}

/**
 * The control socket `twoHosts` gives the daemon in `ns` (for `kiwitun status --socket`): both daemons use the same
 * interface name in their own namespaces but share the file system, and so the default path under /run/kiwitun.
 */
export const controlSocketOf = (ns: Namespace): string => Path.join(Os.tmpdir(), `${ns.name}.sock`)

const IFNAME = "ktun0"
/** The prefix lengths of the inner addresses `twoHosts` gives both hosts. */
export const INNER4_PREFIX = 30
export const INNER6_PREFIX = 64

const hostPlan = (side: "a" | "b", ifname: string, extra: ReadonlyArray<string>) => {
  const me = side === "a" ? 1 : 2
  const peer = side === "a" ? 2 : 1
  const plan = {
    underlay: `192.0.2.${me}`,
    inner4: `198.51.100.${me}`,
    inner6: `2001:db8:1::${me}`,
    ifname
  }
  const args = [
    "-4",
    "-6",
    "-d",
    "-r",
    `192.0.2.${peer}`,
    "-i",
    ifname,
    "--address",
    `${plan.inner4}/${INNER4_PREFIX}`,
    "--address",
    `${plan.inner6}/${INNER6_PREFIX}`,
    ...extra
  ]
  return { ...plan, args }
}

/**
 * Namespaces A and B joined by veth (192.0.2.1/24 and 192.0.2.2/24), and a daemon on each
 * (`-4 -6 -d -r <peer> -i ktun0 --address 198.51.100.x/30 --address 2001:db8:1::x/64`), both up.
 */
export const twoHosts = (options: TwoHostsOptions = {}): Effect.Effect<TwoHosts, NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const ifname = options.ifname ?? IFNAME
    const extra = options.extraArgs ?? []
    const nsA = yield* namespace
    const nsB = yield* namespace
    const pair = yield* veth({
      a: nsA,
      b: nsB,
      addressA: "192.0.2.1/24",
      addressB: "192.0.2.2/24",
      ...(options.underlayMtu !== undefined ? { mtu: options.underlayMtu } : {})
    })
    const planA = hostPlan("a", ifname, extra)
    const planB = hostPlan("b", ifname, extra)
    // Both daemons use the same interface name in their own namespaces but share the file system: give each its own
    // control socket (the daemon removes it on exit) instead of the shared default under /run/kiwitun.
    const ownSocket = (ns: Namespace, args: ReadonlyArray<string>) =>
      args.some((a) => a.startsWith("--control-socket"))
        ? args
        : [...args, "--control-socket", controlSocketOf(ns)]
    const start = options.startDaemons ?? true
    const [daemonA, daemonB] = start
      ? yield* Effect.all([
        kiwitun(nsA, ownSocket(nsA, planA.args), options.command ? { command: options.command } : {}),
        kiwitun(nsB, ownSocket(nsB, planB.args), options.command ? { command: options.command } : {})
      ], { concurrency: 2 }).pipe(
        Effect.map(([x, y]) => [Option.some(x), Option.some(y)] as const)
      )
      : [Option.none<Process>(), Option.none<Process>()] as const
    return {
      a: { ns: nsA, ...planA, daemon: daemonA },
      b: { ns: nsB, ...planB, daemon: daemonB },
      veth: pair
    }
  })

/** The host's daemon, or a failure if the scenario was built without daemons. */
export const daemonOf = (host: TunnelHost): Effect.Effect<Process, NetnsError> =>
  Option.match(host.daemon, {
    onNone: () =>
      Effect.fail(new NetnsError({ reason: "exited", command: "kiwitun", message: `no daemon in ${host.ns.name}` })),
    onSome: Effect.succeed
  })

// ---------------------------------------------------------------------------------------------------------------
// Prerequisites

export interface Prerequisites {
  readonly ok: boolean
  /** What is missing, one entry per problem. */
  readonly missing: ReadonlyArray<string>
}

/** Whether `tool` is a file in one of the directories of $PATH. */
export const onPath = (tool: string): boolean =>
  (process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").some((dir) => existsSync(Path.join(dir, tool)))

/** Root, /dev/net/tun, and the tools the harness calls (ip, ping). */
export const checkPrerequisites: Effect.Effect<Prerequisites> = Effect.sync(() => {
  const missing: Array<string> = []
  if (process.getuid?.() !== 0) missing.push("not running as root")
  if (!existsSync("/dev/net/tun")) missing.push("/dev/net/tun does not exist")
  for (const tool of ["ip", "ping"]) if (!onPath(tool)) missing.push(`${tool} not found on PATH`)
  return { ok: missing.length === 0, missing }
})

// ---------------------------------------------------------------------------------------------------------------
// Reliability tooling: the packet crafter, status over the control socket, the kernel's own counters

/** The compiled crafter (see craft.ts). */
export const craftScript: string = Path.join(repoRoot, "dist", "scripts", "lib", "craft.js")

const parseFailure = (command: string, what: string) => (e: { readonly message: string }) =>
  new NetnsError({ reason: "parse", command, message: `${what}: ${e.message}` })

const lastLine = (text: string): string => text.trim().split("\n").pop() ?? ""

const SendReportJson = Schema.parseJson(Schema.Struct({
  durationMs: Schema.Number,
  items: Schema.Array(Schema.Struct({
    name: Schema.String,
    sent: Schema.Number,
    errors: Schema.Record({ key: Schema.String, value: Schema.Number })
  }))
}))

/**
 * Starts the crafter's `send` in `ns` with `plan` on its stdin and waits until it is sending; `craftReport` waits
 * for its end. Owned by the scope like any process.
 */
export const startCraft = (ns: Namespace, plan: SendPlan): Effect.Effect<Process, NetnsError, Scope.Scope> =>
  Effect.tap(
    spawn(ns, [process.execPath, craftScript, "send"], { input: JSON.stringify(plan) }),
    (proc) => proc.waitForLine(/^sending$/, { timeout: "10 seconds" })
  )

/** Waits for a crafter started by `startCraft` to finish and decodes its report. */
export const craftReport = (
  proc: Process,
  timeout: Duration.DurationInput = "60 seconds"
): Effect.Effect<SendReport, NetnsError> =>
  Effect.gen(function*() {
    const status = yield* proc.exit.pipe(
      Effect.interruptible,
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new NetnsError({ reason: "timeout", command: proc.command, message: "crafter still sending" })
      })
    )
    const stdout = yield* proc.stdout
    if (status.code !== 0) {
      return yield* new NetnsError({
        reason: "exit",
        command: proc.command,
        message: `crafter exited with ${status.code ?? status.signal}: ${yield* proc.stderr}`
      })
    }
    return yield* Schema.decodeUnknown(SendReportJson)(lastLine(stdout)).pipe(
      Effect.mapError(parseFailure(proc.command, `bad crafter report ${stdout}`))
    )
  })

/** Sends `plan` from `ns` and returns the crafter's report. */
export const craft = (ns: Namespace, plan: SendPlan, timeout: Duration.DurationInput = "60 seconds") =>
  Effect.scoped(Effect.flatMap(startCraft(ns, plan), (proc) => craftReport(proc, timeout)))

const CountsJson = Schema.parseJson(Schema.Struct({
  counts: Schema.Record({ key: Schema.String, value: Schema.Number })
}))

export interface UdpCounter {
  /** Stops the counter (SIGTERM) and returns how many datagrams arrived, by tag. */
  readonly stop: Effect.Effect<Readonly<Record<string, number>>, NetnsError>
}

/** A UDP listener on `address`:`port` in `ns` counting datagrams by tag (the crafter's `udp-count`). */
export const udpCounter = (
  ns: Namespace,
  address: string,
  port: number
): Effect.Effect<UdpCounter, NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const proc = yield* spawn(ns, [process.execPath, craftScript, "udp-count", address, String(port)])
    yield* proc.waitForLine(/^listening$/, { timeout: "10 seconds" })
    const stop = Effect.gen(function*() {
      yield* proc.signal("SIGTERM")
      yield* proc.exit.pipe(Effect.interruptible, Effect.timeout("5 seconds"), Effect.ignore)
      const stdout = yield* proc.stdout
      const decoded = yield* Schema.decodeUnknown(CountsJson)(lastLine(stdout)).pipe(
        Effect.mapError(parseFailure(proc.command, `bad counter report ${stdout} ${yield* proc.stderr}`))
      )
      return decoded.counts
    })
    return { stop }
  })

const FloodReportJson = Schema.parseJson(Schema.Struct({
  sent: Schema.Number,
  sendErrors: Schema.Number,
  startedAt: Schema.Number,
  replies: Schema.Array(Schema.Number),
  lastSendMs: Schema.Number
}))

export interface IcmpFloodOptions {
  readonly family: 4 | 6
  readonly destination: string
  readonly port: number
  readonly count: number
  /** The flood is spread evenly over this many milliseconds. */
  readonly durationMs: number
}

/**
 * Floods `destination` with UDP from `ns` and records the ICMP / ICMPv6 destination-unreachable errors about it that
 * come back (the crafter's `icmp-flood`).
 */
export const icmpFlood = (ns: Namespace, o: IcmpFloodOptions): Effect.Effect<FloodReport, NetnsError> =>
  Effect.gen(function*() {
    const argv = [process.execPath, craftScript, "icmp-flood", String(o.family), o.destination, String(o.port)]
    const r = yield* execOk(ns, [...argv, String(o.count), String(o.durationMs)], {
      timeout: Duration.millis(o.durationMs + 30_000)
    })
    return yield* Schema.decodeUnknown(FloodReportJson)(lastLine(r.stdout)).pipe(
      Effect.mapError(parseFailure(r.command, `bad flood report ${r.stdout}`))
    )
  })

/**
 * A DNS server in `ns` (the crafter's `dns`) answering A queries for `records` (name -> IPv4) and NXDOMAIN for any
 * other name; it prints one `query <name> <type> <answer>` line per query.
 */
export const dnsServer = (
  ns: Namespace,
  address: string,
  port: number,
  records: Readonly<Record<string, string>>
): Effect.Effect<Process, NetnsError, Scope.Scope> =>
  Effect.tap(
    spawn(ns, [
      process.execPath,
      craftScript,
      "dns",
      address,
      String(port),
      ...Object.entries(records).map(([name, value]) => `${name}=${value}`)
    ], { grace: "1 second" }),
    (proc) => proc.waitForLine(/^listening$/, { timeout: "10 seconds" })
  )

/**
 * The namespace's IPv4 counters from /proc/net/snmp and /proc/net/netstat, as "Ip.InHdrErrors",
 * "IpExt.InCsumErrors", ... (each file pairs a line of names with a line of values).
 */
export const kernelCounters = (ns: Namespace): Effect.Effect<Readonly<Record<string, number>>, NetnsError> =>
  Effect.map(
    execOk(ns, ["cat", "/proc/net/snmp", "/proc/net/netstat"], { timeout: "10 seconds" }),
    (r) => parseKernelCounters(r.stdout)
  )

/** /proc/net/snmp and /proc/net/netstat text: pairs of `Group: Name ...` and `Group: value ...` lines. */
export const parseKernelCounters = (text: string): Readonly<Record<string, number>> => {
  const counters: Record<string, number> = {}
  const lines = text.split("\n")
  for (let i = 0; i + 1 < lines.length; i++) {
    const names = lines[i]!.trim().split(/\s+/)
    const values = lines[i + 1]!.trim().split(/\s+/)
    const group = names[0]
    if (group === undefined || !group.endsWith(":") || values[0] !== group || values.length !== names.length) continue
    if (values.slice(1).some((v) => !/^-?\d+$/.test(v))) continue
    for (let k = 1; k < names.length; k++) counters[`${group.slice(0, -1)}.${names[k]}`] = Number(values[k])
    i++
  }
  return counters
}

/**
 * The raw IPv4 sockets open in the namespace (/proc/net/raw) and the packets each one's receive queue dropped:
 * `protocol` is the socket's protocol number (the local "port" column).
 */
export const rawSockets = (ns: Namespace): Effect.Effect<ReadonlyArray<RawSocketInfo>, NetnsError> =>
  Effect.map(execOk(ns, ["cat", "/proc/net/raw"], { timeout: "10 seconds" }), (r) => parseRawSockets(r.stdout))

export interface RawSocketInfo {
  readonly protocol: number
  readonly drops: number
}

/** /proc/net/raw text: a header line, then one line per socket, `local_address` as ADDR:PROTO, drops last. */
export const parseRawSockets = (text: string): ReadonlyArray<RawSocketInfo> =>
  text.split("\n").slice(1).map((line) => line.trim().split(/\s+/)).filter((f) => f.length >= 13).map((f) => ({
    protocol: parseInt(f[1]?.split(":")[1] ?? "0", 16),
    drops: Number(f[f.length - 1])
  }))

/** The counters of `kiwitun status --json`, under the names of the daemon's counter line (`tun_rx`, drop names). */
export const statusCounters = (
  ns: Namespace,
  socket: string
): Effect.Effect<Readonly<Record<string, number>>, NetnsError> =>
  Effect.gen(function*() {
    const r = yield* execOk(ns, [...kiwitunCommand, "status", "--json", "--socket", socket], { timeout: "20 seconds" })
    const report = yield* Schema.decodeUnknown(StatusReportJson)(r.stdout.trim()).pipe(
      Effect.mapError(parseFailure(r.command, `bad status report ${r.stdout}`))
    )
    const c = report.counters
    return {
      tun_rx: c.tunRxPackets,
      encap_packets: c.encapPackets,
      encap_bytes: c.encapBytes,
      net_rx: c.netRxPackets,
      decap_packets: c.decapPackets,
      decap_bytes: c.decapBytes,
      icmp_sent: c.icmpSent,
      ...c.drops
    }
  })

export interface NamespaceEtc {
  /** Where the files live (/etc/netns/<ns>). */
  readonly dir: string
  /** Rewrites one of the files in place (same inode: the bind mount of a running process sees the change). */
  readonly write: (name: string, content: string) => Effect.Effect<void, NetnsError>
}

const NETNS_ETC = "/etc/netns"

/**
 * Files that `ip netns exec NS` bind-mounts over the same names in /etc (hosts, nsswitch.conf, resolv.conf, ...),
 * written before any process starts (only what exists at exec time is mounted). Removed when the scope closes,
 * with /etc/netns itself when this created it and nothing else is in it.
 */
export const namespaceEtc = (
  ns: Namespace,
  files: Readonly<Record<string, string>>
): Effect.Effect<NamespaceEtc, NetnsError, Scope.Scope> => {
  const dir = Path.join(NETNS_ETC, ns.name)
  const failure = (what: string) => (cause: unknown) =>
    new NetnsError({
      reason: "spawn",
      command: what,
      message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}`
    })
  const write = (name: string, content: string) =>
    Effect.try({ try: () => writeFileSync(Path.join(dir, name), content), catch: failure(`write ${dir}/${name}`) })
  return Effect.acquireRelease(
    Effect.try({
      try: () => {
        const createdRoot = !existsSync(NETNS_ETC)
        mkdirSync(dir, { recursive: true })
        return createdRoot
      },
      catch: failure(`mkdir ${dir}`)
    }).pipe(Effect.retry({ times: 3 })), // another run may remove an empty /etc/netns between the two levels
    (createdRoot) =>
      Effect.sync(() => {
        rmSync(dir, { recursive: true, force: true })
        if (createdRoot) {
          try {
            rmdirSync(NETNS_ETC)
          } catch {
            // not empty: another namespace still uses it
          }
        }
      })
  ).pipe(
    Effect.zipRight(Effect.forEach(Object.entries(files), ([name, content]) => write(name, content))),
    Effect.as({ dir, write })
  )
}

/** The pids of the processes running in the namespace (`ip netns pids`). */
export const namespacePids = (ns: Namespace): Effect.Effect<ReadonlyArray<number>, NetnsError> =>
  Effect.map(
    runOk(["ip", "netns", "pids", ns.name], { timeout: "5 seconds" }),
    (r) => r.stdout.split("\n").map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n > 0)
  )
