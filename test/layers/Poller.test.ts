import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber } from "effect"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Ffi from "../../src/layers/Ffi.js"

// The poller over a FIFO opened read-write (both ends in one fd, no network needed). Whether libuv watches the fd
// is read from the kernel: /proc/self/fdinfo of the event loop's epoll instance lists every registered fd.

const watched = (fd: number): boolean => {
  const pattern = new RegExp(`^tfd:\\s+${fd}\\s`, "m")
  for (const entry of Fs.readdirSync("/proc/self/fd")) {
    let target: string
    try {
      target = Fs.readlinkSync(`/proc/self/fd/${entry}`)
    } catch {
      continue
    }
    if (target !== "anon_inode:[eventpoll]") continue
    if (pattern.test(Fs.readFileSync(`/proc/self/fdinfo/${entry}`, "utf8"))) return true
  }
  return false
}

const fifo = Effect.acquireRelease(
  Effect.sync(() => {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "kiwitun-poller-"))
    const path = Path.join(dir, "fifo")
    ChildProcess.execFileSync("mkfifo", [path])
    const lib = Ffi.libc()
    const fd = lib.open(path, Ffi.O_RDWR | Ffi.O_NONBLOCK)
    if (fd < 0) throw new Error(`open fifo: ${-fd}`)
    return { lib, fd, dir }
  }),
  ({ dir, fd, lib }) =>
    Effect.sync(() => {
      lib.close(fd)
      Fs.rmSync(dir, { recursive: true, force: true })
    })
)

const put = (lib: Ffi.Libc, fd: number) => expect(lib.write(fd, new Uint8Array([1]))).toBe(1)
const drain = (lib: Ffi.Libc, fd: number) => {
  const buf = new Uint8Array(64)
  while (lib.read(fd, buf) > 0) continue
}
/** Lets the event loop turn (libuv calls the poll callback from it). */
const turn = Effect.sleep("30 millis")

describe("Poller", () => {
  it.live("wakes a reader, stays watching for the next wait, and stops when an event finds nobody waiting", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const { fd, lib } = yield* fifo
        const poller = yield* Ffi.makePoller(fd)
        expect(watched(fd)).toBe(false)

        const first = yield* Effect.fork(poller.readable)
        yield* turn
        expect(watched(fd)).toBe(true)
        put(lib, fd)
        expect(yield* Fiber.join(first)).toBe(0)
        // still registered: the reader drains and waits again without an epoll_ctl pair per packet
        expect(watched(fd)).toBe(true)

        drain(lib, fd)
        const second = yield* Effect.fork(poller.readable)
        yield* turn
        expect(second.unsafePoll()).toBeNull()
        put(lib, fd)
        expect(yield* Fiber.join(second)).toBe(0)

        // readable while nobody waits (a busy reader): the next callback stops the handle
        yield* turn
        expect(watched(fd)).toBe(false)
        // level-triggered: the unread byte wakes the next waiter at once
        const third = yield* Effect.fork(poller.readable)
        expect(yield* Fiber.join(third)).toBe(0)
        drain(lib, fd)
      })
    ))

  it.live("an interrupted waiter stops the watch; a closed poller wakes waiters with EBADF", () =>
    Effect.scoped(
      Effect.gen(function*() {
        const { fd } = yield* fifo
        const poller = yield* Ffi.makePoller(fd)
        const waiting = yield* Effect.fork(poller.readable)
        yield* turn
        expect(watched(fd)).toBe(true)
        yield* Fiber.interrupt(waiting)
        expect(watched(fd)).toBe(false)

        const closing = yield* Effect.scoped(
          Effect.gen(function*() {
            const inner = yield* Ffi.makePoller(fd)
            return yield* Effect.fork(inner.readable)
          })
        )
        expect(yield* Fiber.join(closing)).toBe(Ffi.Errno.EBADF)
      })
    ))
})
