/**
 * The C reference tunnel, bench/reference/ctun.c: a plain userspace IPIP / 6in4 tunnel (one thread per descriptor,
 * one syscall per packet, default socket buffers) that the benchmark measures in the same run as kiwitun and that
 * the interop tests run opposite kiwitun. Built on demand with the system's C compiler into dist/reference/ctun,
 * and started in a namespace the way the C original's README starts kiwitun: the daemon creates and raises the
 * device, `ip address add` and `ip link set` do the rest.
 */
import { constants as FsConstants } from "node:fs"
import { access, mkdir, rename, rm, stat } from "node:fs/promises"
import * as Path from "node:path"
import type { Scope } from "effect"
import { Data, Effect, Option } from "effect"
import * as Netns from "../../scripts/lib/Netns.js"

export class ReferenceBuildError extends Data.TaggedError("ReferenceBuildError")<{
  /** no-compiler: the compiler is not on PATH; no-source: ctun.c is missing; compile: the compiler failed. */
  readonly reason: "no-compiler" | "no-source" | "compile"
  readonly message: string
}> {}

export const sourcePath: string = Path.join(Netns.repoRoot, "bench", "reference", "ctun.c")
export const binaryPath: string = Path.join(Netns.repoRoot, "dist", "reference", "ctun")

/** The MTU ctun sets itself and that the set-up sets again, as the C original's README does by hand. */
export const TUNNEL_MTU = 1480

export interface BuildOptions {
  readonly source?: string
  readonly binary?: string
  /** A name looked up on `path`, or a path (default "cc"). */
  readonly compiler?: string
  /** The directories searched for the compiler, colon-separated (default: $PATH). */
  readonly path?: string
}

export interface Built {
  readonly binary: string
  /** False when the binary was already newer than (or as new as) the source. */
  readonly built: boolean
}

/** The binary must be (re)built when it is missing or older than the source. */
export const needsBuild = (binaryMtimeMs: number | undefined, sourceMtimeMs: number): boolean =>
  binaryMtimeMs === undefined || binaryMtimeMs < sourceMtimeMs

export const compileCommand = (compiler: string, source: string, output: string): ReadonlyArray<string> => [
  compiler,
  "-O2",
  "-Wall",
  "-Wextra",
  "-pthread",
  "-o",
  output,
  source
]

const mtimeMs = (file: string): Effect.Effect<Option.Option<number>> =>
  Effect.promise(() => stat(file).then((s) => Option.some(s.mtimeMs), () => Option.none<number>()))

const executable = (file: string): Effect.Effect<boolean> =>
  Effect.promise(() =>
    Promise.all([stat(file), access(file, FsConstants.X_OK)]).then(([s]) => s.isFile(), () => false)
  )

/** The compiler's path: `name` itself when it holds a slash, else the first executable `name` on `path`. */
export const findExecutable = (name: string, path: string): Effect.Effect<Option.Option<string>> =>
  name.includes("/")
    ? Effect.map(executable(name), (ok) => (ok ? Option.some(name) : Option.none()))
    : Effect.findFirst(
      path.split(":").filter((dir) => dir.length > 0).map((dir) => Path.join(dir, name)),
      executable
    )

/**
 * Compiles ctun when the binary is missing or older than the source; fails with reason "no-compiler", naming the
 * compiler, when it is not installed. The compiler writes a temporary file that is renamed into place, so a failed
 * or concurrent build never leaves a half-written binary that looks up to date.
 */
export const ensureBuilt = (options: BuildOptions = {}): Effect.Effect<Built, ReferenceBuildError> =>
  Effect.gen(function*() {
    const source = options.source ?? sourcePath
    const binary = options.binary ?? binaryPath
    const compiler = options.compiler ?? "cc"
    const sourceTime = yield* mtimeMs(source)
    if (Option.isNone(sourceTime)) {
      return yield* new ReferenceBuildError({ reason: "no-source", message: `the C reference ${source} is missing` })
    }
    if (!needsBuild(Option.getOrUndefined(yield* mtimeMs(binary)), sourceTime.value)) return { binary, built: false }
    const found = yield* findExecutable(compiler, options.path ?? process.env["PATH"] ?? "/usr/bin:/bin")
    if (Option.isNone(found)) {
      return yield* new ReferenceBuildError({
        reason: "no-compiler",
        message: `cannot build the C reference: the C compiler "${compiler}" was not found ` +
          `(install gcc and libc6-dev)`
      })
    }
    const temporary = `${binary}.tmp-${process.pid}`
    const compileFailed = (message: string) =>
      Effect.zipRight(
        Effect.promise(() => rm(temporary, { force: true })),
        Effect.fail(new ReferenceBuildError({ reason: "compile", message: `cannot build the C reference: ${message}` }))
      )
    yield* Effect.tryPromise({
      try: () => mkdir(Path.dirname(binary), { recursive: true }),
      catch: (cause) =>
        new ReferenceBuildError({ reason: "compile", message: `cannot create ${Path.dirname(binary)}: ${cause}` })
    })
    const argv = compileCommand(found.value, source, temporary)
    const result = yield* Netns.run(argv, { timeout: "120 seconds" }).pipe(
      Effect.catchAll((e) => compileFailed(e.message))
    )
    if (result.code !== 0) {
      return yield* compileFailed(
        `${argv.join(" ")} exited with ${result.code ?? result.signal}:\n${(result.stderr || result.stdout).trim()}`
      )
    }
    yield* Effect.tryPromise({ try: () => rename(temporary, binary), catch: (cause) => String(cause) }).pipe(
      Effect.catchAll((message) => compileFailed(`cannot move the binary into place: ${message}`))
    )
    return { binary, built: true }
  })

export interface CtunOptions {
  readonly ipip?: boolean
  readonly sit?: boolean
  readonly remote: string
  readonly local?: string
  readonly ifname?: string
  readonly ttl?: number
}

/** ctun's command line (both modes unless told otherwise; `-d` for the C original's habit, ctun ignores it). */
export const ctunArgs = (o: CtunOptions): ReadonlyArray<string> => [
  ...(o.ipip === false ? [] : ["-4"]),
  ...(o.sit === false ? [] : ["-6"]),
  "-d",
  "-r",
  o.remote,
  ...(o.local !== undefined ? ["-l", o.local] : []),
  ...(o.ifname !== undefined ? ["-i", o.ifname] : []),
  ...(o.ttl !== undefined ? ["-t", String(o.ttl)] : [])
]

/** ctun's one line once its device is up and its threads run. */
export const UP_LINE = /^ctun: up (\S+)$/

/**
 * Starts ctun in `ns` and waits for its "ctun: up" line; returns the process and the device name it reported.
 * Stopped with SIGTERM (then SIGKILL) when the scope closes.
 */
export const start = (
  ns: Netns.Namespace,
  args: ReadonlyArray<string>,
  binary: string = binaryPath
): Effect.Effect<{ readonly process: Netns.Process; readonly ifname: string }, Netns.NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const proc = yield* Netns.spawn(ns, [binary, ...args], { grace: "2 seconds" })
    const line = yield* proc.waitForLine(UP_LINE, { timeout: "10 seconds" })
    return { process: proc, ifname: UP_LINE.exec(line)?.[1] ?? "" }
  })

export interface HostOptions {
  readonly binary?: string
  readonly ipip?: boolean
  readonly sit?: boolean
}

/**
 * Runs ctun on a host of `Netns.twoHosts({ startDaemons: false })` towards `peer`, with the host's device name and
 * inner addresses: the result is that host with ctun as its daemon (and ctun's arguments as `args`).
 */
export const host = (
  me: Netns.TunnelHost,
  peer: Netns.TunnelHost,
  options: HostOptions = {}
): Effect.Effect<Netns.TunnelHost, Netns.NetnsError, Scope.Scope> =>
  Effect.gen(function*() {
    const args = ctunArgs({
      remote: peer.underlay,
      ifname: me.ifname,
      ...(options.ipip !== undefined ? { ipip: options.ipip } : {}),
      ...(options.sit !== undefined ? { sit: options.sit } : {})
    })
    const { ifname, process } = yield* start(me.ns, args, options.binary)
    yield* Netns.ip(me.ns, "address", "add", `${me.inner4}/${Netns.INNER4_PREFIX}`, "dev", ifname)
    yield* Netns.ip(me.ns, "address", "add", `${me.inner6}/${Netns.INNER6_PREFIX}`, "dev", ifname)
    yield* Netns.ip(me.ns, "link", "set", "dev", ifname, "mtu", String(TUNNEL_MTU), "up")
    return { ...me, ifname, daemon: Option.some(process), args }
  })
