/**
 * The only module that talks to koffi: typed bindings to the libc calls the Live layers need, the layouts of the
 * kernel structs they pass, and readiness waiting on the Node event loop.
 *
 * Conventions: every wrapper returns the call's result when it is >= 0 and `-errno` when it failed, with errno read
 * by `koffi.errno()` right after the call, before anything else can clobber it. Buffers are passed as `void *`
 * (koffi hands the view's own memory to the call, no copy). Constants are the Linux x86_64 / aarch64 values.
 */
import { Data, Effect } from "effect"
import type { Scope } from "effect"
import koffi from "koffi"

/** errno values (asm-generic/errno-base.h, errno.h). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOSPC: 28,
  EBADFD: 77,
  ENOTSOCK: 88,
  EMSGSIZE: 90,
  EOPNOTSUPP: 95,
  EADDRNOTAVAIL: 99,
  ENETUNREACH: 101,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  EHOSTUNREACH: 113
} as const

export const O_RDWR = 0x2
export const O_NONBLOCK = 0x800
export const O_CLOEXEC = 0x80000

export const AF_INET = 2
export const AF_NETLINK = 16
export const SOCK_DGRAM = 2
export const SOCK_RAW = 3
export const SOCK_NONBLOCK = 0x800
export const SOCK_CLOEXEC = 0x80000
export const NETLINK_ROUTE = 0

export const SOL_SOCKET = 1
export const SO_SNDBUF = 7
export const SO_RCVBUF = 8
export const SO_SNDBUFFORCE = 32
export const SO_RCVBUFFORCE = 33
export const SOL_IP = 0
export const IP_HDRINCL = 3
export const IP_RECVERR = 11
export const SOL_NETLINK = 270
export const NETLINK_EXT_ACK = 11

export const MSG_TRUNC = 0x20
export const MSG_DONTWAIT = 0x40
export const MSG_ERRQUEUE = 0x2000

// ioctl requests (linux/sockios.h, linux/if_tun.h: TUNSETIFF = _IOW('T', 202, int))
export const TUNSETIFF = 0x400454ca
/** _IOW('T', 208, unsigned int): the offload flags are passed by value */
export const TUNSETOFFLOAD = 0x400454d0
/** _IOW('T', 216, int): takes a pointer to the header size */
export const TUNSETVNETHDRSZ = 0x400454d8
export const TUN_F_CSUM = 0x01
export const TUN_F_TSO4 = 0x02
export const TUN_F_TSO6 = 0x04
/** UDP segmentation offload (gso_type UDP_L4), Linux 6.2+; the kernel takes it only with USO6 too, and with CSUM. */
export const TUN_F_USO4 = 0x20
export const TUN_F_USO6 = 0x40
export const SIOCGIFFLAGS = 0x8913
export const SIOCSIFFLAGS = 0x8914
export const SIOCGIFMTU = 0x8921
export const SIOCSIFMTU = 0x8922
export const SIOCGIFTXQLEN = 0x8942
export const SIOCSIFTXQLEN = 0x8943

export const IFF_UP = 0x1
export const IFF_TUN = 0x0001
export const IFF_NO_PI = 0x1000
export const IFF_VNET_HDR = 0x4000
export const IFNAMSIZ = 16
/** struct ifreq: ifr_name[16] then a 24-byte union (ifr_flags, ifr_mtu, ifr_qlen, ... at offset 16). */
export const IFREQ_SIZE = 40

// struct layouts (LP64)
export const IOVEC_SIZE = 16
/** struct msghdr: name@0, namelen@8, iov@16, iovlen@24, control@32, controllen@40, flags@48 */
export const MSGHDR_SIZE = 56
/** struct mmsghdr: msghdr then msg_len@56 */
export const MMSGHDR_SIZE = 64
export const SOCKADDR_IN_SIZE = 16
export const SOCKADDR_NL_SIZE = 12
/** struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type; data 8-aligned after it */
export const CMSGHDR_SIZE = 16

/** A `void *` argument: a view (its own bytes are passed) or a raw address. */
export type Pointer = Uint8Array | bigint | null

/** Typed signatures of the libc functions in use; see the module comment for the return convention. */
export interface Libc {
  readonly open: (path: string, flags: number) => number
  readonly close: (fd: number) => number
  readonly read: (fd: number, buf: Uint8Array) => number
  readonly write: (fd: number, buf: Uint8Array) => number
  /** ioctl with a pointer argument (ifreq and the like). */
  readonly ioctl: (fd: number, request: number, arg: Uint8Array) => number
  /** ioctl with an int argument passed by value (TUNSETOFFLOAD and the like). */
  readonly ioctlInt: (fd: number, request: number, arg: number) => number
  readonly socket: (domain: number, type: number, protocol: number) => number
  readonly setsockopt: (fd: number, level: number, name: number, value: Uint8Array) => number
  readonly setsockoptInt: (fd: number, level: number, name: number, value: number) => number
  /** Returns the option's length; `value` receives it. */
  readonly getsockopt: (fd: number, level: number, name: number, value: Uint8Array) => number
  readonly getsockoptInt: (fd: number, level: number, name: number) => number
  readonly bind: (fd: number, addr: Uint8Array) => number
  readonly sendto: (fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null) => number
  /** `addr`, when given, receives the sender's address (its length is what the kernel may fill). */
  readonly recvfrom: (fd: number, buf: Uint8Array, flags: number, addr: Uint8Array | null) => number
  /** `msg` points at a struct msghdr. */
  readonly sendmsg: (fd: number, msg: Pointer, flags: number) => number
  readonly recvmsg: (fd: number, msg: Pointer, flags: number) => number
  /** `msgvec` points at `vlen` struct mmsghdr; returns how many were transferred. */
  readonly sendmmsg: (fd: number, msgvec: Pointer, vlen: number, flags: number) => number
  readonly recvmmsg: (fd: number, msgvec: Pointer, vlen: number, flags: number) => number
  readonly fcntl: (fd: number, cmd: number, arg: number) => number
  /** 0 when no such interface (with errno, returned as -errno). */
  readonly ifNameToIndex: (name: string) => number
  readonly strerror: (errno: number) => string
}

type Fn<A extends ReadonlyArray<unknown>, R> = (...args: A) => R

/** Binds libc. Each Live layer calls it once in its `make`; the library handle itself is cached by koffi. */
export const libc = (): Libc => {
  const lib = koffi.load("libc.so.6")
  // koffi types every foreign function as (...args: any[]) => any: the casts below are where they get a signature.
  const def = <A extends ReadonlyArray<unknown>, R>(decl: string) => lib.func(decl) as Fn<A, R>
  const open_ = def<[string, number], number>("int open(const char *path, int flags, ...)")
  const close_ = def<[number], number>("int close(int fd)")
  const read_ = def<[number, Uint8Array, number], number>("intptr_t read(int fd, void *buf, size_t count)")
  const write_ = def<[number, Uint8Array, number], number>("intptr_t write(int fd, const void *buf, size_t count)")
  const ioctl_ = def<[number, number, string, unknown], number>("int ioctl(int fd, unsigned long request, ...)")
  const socket_ = def<[number, number, number], number>("int socket(int domain, int type, int protocol)")
  const setsockopt_ = def<[number, number, number, Uint8Array, number], number>(
    "int setsockopt(int fd, int level, int name, const void *value, uint32_t len)"
  )
  const getsockopt_ = def<[number, number, number, Uint8Array, Uint32Array], number>(
    "int getsockopt(int fd, int level, int name, void *value, void *len)"
  )
  const bind_ = def<[number, Uint8Array, number], number>("int bind(int fd, const void *addr, uint32_t len)")
  const sendto_ = def<[number, Uint8Array, number, number, Uint8Array | null, number], number>(
    "intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)"
  )
  const recvfrom_ = def<[number, Uint8Array, number, number, Uint8Array | null, Uint32Array | null], number>(
    "intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, void *addrlen)"
  )
  const sendmsg_ = def<[number, Pointer, number], number>("intptr_t sendmsg(int fd, const void *msg, int flags)")
  const recvmsg_ = def<[number, Pointer, number], number>("intptr_t recvmsg(int fd, void *msg, int flags)")
  const sendmmsg_ = def<[number, Pointer, number, number], number>(
    "int sendmmsg(int fd, void *msgvec, unsigned int vlen, int flags)"
  )
  const recvmmsg_ = def<[number, Pointer, number, number, null], number>(
    "int recvmmsg(int fd, void *msgvec, unsigned int vlen, int flags, void *timeout)"
  )
  const fcntl_ = def<[number, number, string, number], number>("int fcntl(int fd, int cmd, ...)")
  const ifNameToIndex_ = def<[string], number>("unsigned int if_nametoindex(const char *name)")
  const strerror_ = def<[number], string>("const char *strerror(int errnum)")

  const check = (r: number): number => (r < 0 ? -koffi.errno() : r)
  const intBox = new Uint8Array(4)
  const intView = new DataView(intBox.buffer)
  const lenBox = new Uint32Array(1)

  return {
    open: (path, flags) => check(open_(path, flags)),
    close: (fd) => check(close_(fd)),
    read: (fd, buf) => check(read_(fd, buf, buf.byteLength)),
    write: (fd, buf) => check(write_(fd, buf, buf.byteLength)),
    ioctl: (fd, request, arg) => check(ioctl_(fd, request, "void *", arg)),
    ioctlInt: (fd, request, arg) => check(ioctl_(fd, request, "int", arg)),
    socket: (domain, type, protocol) => check(socket_(domain, type, protocol)),
    setsockopt: (fd, level, name, value) => check(setsockopt_(fd, level, name, value, value.byteLength)),
    setsockoptInt: (fd, level, name, value) => {
      intView.setInt32(0, value, true)
      return check(setsockopt_(fd, level, name, intBox, 4))
    },
    getsockopt: (fd, level, name, value) => {
      lenBox[0] = value.byteLength
      const r = check(getsockopt_(fd, level, name, value, lenBox))
      return r < 0 ? r : lenBox[0]!
    },
    getsockoptInt: (fd, level, name) => {
      lenBox[0] = 4
      const r = check(getsockopt_(fd, level, name, intBox, lenBox))
      return r < 0 ? r : intView.getInt32(0, true)
    },
    bind: (fd, addr) => check(bind_(fd, addr, addr.byteLength)),
    sendto: (fd, buf, flags, addr) =>
      check(sendto_(fd, buf, buf.byteLength, flags, addr, addr === null ? 0 : addr.byteLength)),
    recvfrom: (fd, buf, flags, addr) => {
      if (addr === null) return check(recvfrom_(fd, buf, buf.byteLength, flags, null, null))
      lenBox[0] = addr.byteLength
      return check(recvfrom_(fd, buf, buf.byteLength, flags, addr, lenBox))
    },
    sendmsg: (fd, msg, flags) => check(sendmsg_(fd, msg, flags)),
    recvmsg: (fd, msg, flags) => check(recvmsg_(fd, msg, flags)),
    sendmmsg: (fd, msgvec, vlen, flags) => check(sendmmsg_(fd, msgvec, vlen, flags)),
    recvmmsg: (fd, msgvec, vlen, flags) => check(recvmmsg_(fd, msgvec, vlen, flags, null)),
    fcntl: (fd, cmd, arg) => check(fcntl_(fd, cmd, "int", arg)),
    ifNameToIndex: (name) => {
      const r = ifNameToIndex_(name)
      return r === 0 ? -koffi.errno() : r
    },
    strerror: (errno) => strerror_(errno)
  }
}

/** "ENODEV (No such device)"-style text for messages. */
export const describeErrno = (lib: Libc, errno: number): string => {
  const name = Object.entries(Errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`
  return `${name} (${lib.strerror(errno)})`
}

/**
 * The address of a large ArrayBuffer as a Number (user-space addresses fit in 53 bits). Only ArrayBuffers, whose
 * backing stores V8 never moves; never a small typed array, which lives on V8's heap and moves with it.
 */
export const addressOf = (buffer: ArrayBuffer): number => Number(koffi.address(buffer))

/** Writes a pointer-sized value (LP64, little-endian) without going through BigInt. */
export const writePointer = (dv: DataView, offset: number, address: number): void => {
  dv.setUint32(offset, address % 0x1_0000_0000, true)
  dv.setUint32(offset + 4, Math.floor(address / 0x1_0000_0000), true)
}

export const writeSize = writePointer

/** Buffers of at least this size are addressed in place by the batch layouts; smaller ones are copied. */
export const LARGE_BUFFER = 4096

// ---------------------------------------------------------------------------------------------------------------
// Readiness on the Node event loop

export class PollError extends Data.TaggedError("PollError")<{ readonly errno: number; readonly message: string }> {}

interface PollEvents {
  readonly readable: boolean
  readonly writable: boolean
  readonly disconnect: boolean
}

interface RawPollHandle {
  start(opts: { readable: boolean; writable: boolean }, callback: (status: number, events: PollEvents) => void): void
  stop(): void
  close(): void
}

// koffi calls the callback as (status, events), whatever its declarations say; status < 0 is a libuv error (-errno).
const nodePoll = koffi.node.poll as unknown as (
  fd: number,
  opts: { readable: boolean; writable: boolean },
  callback: (status: number, events: PollEvents) => void
) => RawPollHandle | null

/**
 * Waits for readiness of one fd. libuv allows one poll handle per fd, so readers and writers of the same socket
 * share this one; it is started when someone waits, with the union of their interests, and stopped (or narrowed)
 * when an event finds nobody waiting for it (it is level-triggered: a started handle with nothing waiting would call
 * back on every loop iteration).
 */
export interface Poller {
  /**
   * Completes with 0 when the fd is readable, or with a positive errno from libuv (EBADF also for POLLERR: a pending
   * error, which the next syscall on the fd reports). Either way the caller retries its syscall.
   */
  readonly readable: Effect.Effect<number>
  /** Completes with 0 when the fd is writable, or with a positive errno from libuv. */
  readonly writable: Effect.Effect<number>
}

type Waker = (status: number) => void

/**
 * A Poller for `fd`, closed when the scope closes (before the fd itself is closed, so libuv unregisters a live fd).
 * The handle is owned by the returned object and the finalizer, which keeps it reachable: a collected handle is
 * closed by its finalizer and the fd silently stops being watched.
 */
export const makePoller = (fd: number): Effect.Effect<Poller, PollError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      let handle: RawPollHandle | null = null
      let failure = "koffi.node.poll returned null"
      try {
        handle = nodePoll(fd, { readable: false, writable: false }, () => {})
        handle?.stop()
      } catch (cause) {
        failure = String(cause)
      }
      return handle === null
        ? Effect.fail(new PollError({ errno: Errno.EBADF, message: `cannot watch fd ${fd}: ${failure}` }))
        : Effect.succeed(new PollerImpl(handle))
    }),
    (p) => Effect.sync(() => p.close())
  )

class PollerImpl implements Poller {
  private readonly readers = new Set<Waker>()
  private readonly writers = new Set<Waker>()
  /** bit 1 = readable, bit 2 = writable: what the handle is started with */
  private started = 0
  private handle: RawPollHandle | null

  constructor(handle: RawPollHandle) {
    this.handle = handle
  }

  readonly readable: Effect.Effect<number> = Effect.async<number>((resume) => this.register(this.readers, resume))
  readonly writable: Effect.Effect<number> = Effect.async<number>((resume) => this.register(this.writers, resume))

  private register(set: Set<Waker>, resume: (effect: Effect.Effect<number>) => void) {
    if (this.handle === null) {
      resume(Effect.succeed(Errno.EBADF))
      return
    }
    const waker: Waker = (status) => resume(Effect.succeed(status))
    set.add(waker)
    this.update()
    // interruption: forget the waiter, stop watching if nobody else waits
    return Effect.sync(() => {
      set.delete(waker)
      this.update()
    })
  }

  private readonly onEvent = (status: number, events: PollEvents) => {
    if (status < 0) {
      // libuv reports POLLERR (a pending socket error, an error-queue entry, a detached TUN) as UV_EBADF and stops
      // the handle itself: waiters retry their syscall, which tells the real error and clears it.
      this.started = 0
      this.wake(this.readers, -status)
      this.wake(this.writers, -status)
      this.update()
      return
    }
    // The handle stays started after waking its waiters: they usually wait again right after draining the fd, and
    // an uv_poll_stop/uv_poll_start pair per wait is two epoll_ctl calls on every packet at low rates. An event that
    // finds nobody waiting narrows or stops it (update), so a busy reader is not called back on every loop turn.
    const readable = events.readable || events.disconnect
    if ((readable && this.readers.size === 0) || (events.writable && this.writers.size === 0)) this.update()
    if (readable) this.wake(this.readers, 0)
    if (events.writable) this.wake(this.writers, 0)
  }

  private wake(set: Set<Waker>, status: number) {
    if (set.size === 0) return
    const wakers = Array.from(set)
    set.clear()
    for (const w of wakers) w(status)
  }

  private update() {
    const handle = this.handle
    if (handle === null) return
    const want = (this.readers.size > 0 ? 1 : 0) | (this.writers.size > 0 ? 2 : 0)
    if (want === this.started) return
    try {
      if (want === 0) handle.stop()
      else handle.start({ readable: (want & 1) !== 0, writable: (want & 2) !== 0 }, this.onEvent)
      this.started = want
    } catch {
      // uv_poll_start failed: nobody would ever be woken, so fail the waiters instead of hanging them
      this.started = 0
      this.wake(this.readers, Errno.EBADF)
      this.wake(this.writers, Errno.EBADF)
    }
  }

  close() {
    const handle = this.handle
    if (handle === null) return
    this.handle = null
    try {
      handle.stop()
      handle.close()
    } catch {
      // already closed by libuv; nothing left to release
    }
    this.wake(this.readers, Errno.EBADF)
    this.wake(this.writers, Errno.EBADF)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Capabilities

const LINUX_CAPABILITY_VERSION_3 = 0x20080522
const CAP_NET_ADMIN = 12
const CAP_NET_RAW = 13

export type Capability = "CAP_NET_ADMIN" | "CAP_NET_RAW"

/** Which of the capabilities the daemon needs are missing from this process's effective set (capget(2)). */
export const missingCapabilities = (): Array<Capability> => {
  const lib = koffi.load("libc.so.6")
  const capget = lib.func("int capget(void *hdr, void *data)") as Fn<[Uint32Array, Uint32Array], number>
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0])
  // version 3: two { effective, permitted, inheritable } triples, capabilities 0-31 then 32-63
  const data = new Uint32Array(6)
  if (capget(header, data) < 0) return ["CAP_NET_ADMIN", "CAP_NET_RAW"]
  const effective = data[0]!
  const out: Array<Capability> = []
  if ((effective & (1 << CAP_NET_ADMIN)) === 0) out.push("CAP_NET_ADMIN")
  if ((effective & (1 << CAP_NET_RAW)) === 0) out.push("CAP_NET_RAW")
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// Running as a service: syslog(3), users, privileges, unix datagram addresses

export const AF_UNIX = 1
export const MSG_NOSIGNAL = 0x4000

/** syslog(3) options and facility (sys/syslog.h). */
export const LOG_PID = 0x01
export const LOG_NDELAY = 0x08
export const LOG_DAEMON = 3 << 3

/** A syslog(3) connection opened with openlog(3); `close` calls closelog(3) and frees the ident. */
export interface SyslogHandle {
  /** `priority` is the severity (0..7); the facility given to openlog is added by the C library. */
  readonly log: (priority: number, message: string) => void
  readonly close: () => void
}

/**
 * openlog(ident, option, facility). The C library keeps the ident pointer for later calls, so it lives in memory
 * allocated here (koffi.alloc), never moved by V8, and freed only after closelog. Messages go through a "%s"
 * format: a '%' in a message is never interpreted.
 */
export const openSyslog = (ident: string, option: number, facility: number): SyslogHandle => {
  const lib = koffi.load("libc.so.6")
  const openlog_ = lib.func("void openlog(const void *ident, int option, int facility)") as Fn<
    [unknown, number, number],
    void
  >
  const syslog_ = lib.func("void syslog(int priority, const char *format, ...)") as Fn<
    [number, string, string, string],
    void
  >
  const closelog_ = lib.func("void closelog(void)") as Fn<[], void>
  const bytes = Buffer.byteLength(ident) + 1
  const identMemory: unknown = koffi.alloc("char", bytes)
  koffi.encode(identMemory, koffi.array("char", bytes), ident)
  openlog_(identMemory, option, facility)
  let open = true
  return {
    log: (priority, message) => {
      if (open) syslog_(priority & 7, "%s", "const char *", message)
    },
    close: () => {
      if (!open) return
      open = false
      closelog_()
      koffi.free(identMemory)
    }
  }
}

/** A user account as getpwnam(3)/getpwuid(3) report it (so NSS sources other than /etc/passwd count too). */
export interface UserAccount {
  readonly name: string
  readonly uid: number
  readonly gid: number
}

/** `name` as a user name, or (all digits) as a numeric uid; undefined when there is no such account. */
export const lookupUser = (name: string): UserAccount | undefined => {
  const lib = koffi.load("libc.so.6")
  // struct passwd (LP64): name, passwd, uid, gid, gecos, dir, shell
  const Passwd = koffi.struct({
    pw_name: "const char *",
    pw_passwd: "const char *",
    pw_uid: "uint32_t",
    pw_gid: "uint32_t",
    pw_gecos: "const char *",
    pw_dir: "const char *",
    pw_shell: "const char *"
  })
  const getpwnam_ = lib.func("getpwnam", koffi.pointer(Passwd), ["const char *"]) as Fn<[string], unknown>
  const getpwuid_ = lib.func("getpwuid", koffi.pointer(Passwd), ["uint32_t"]) as Fn<[number], unknown>
  const numeric = /^[0-9]{1,10}$/.test(name) ? Number(name) : undefined
  const entry = numeric !== undefined && numeric < 0xffffffff ? getpwuid_(numeric) : getpwnam_(name)
  if (entry === null || entry === undefined) return undefined
  const pw = koffi.decode(entry, Passwd) as { pw_name: string; pw_uid: number; pw_gid: number }
  return { name: pw.pw_name, uid: pw.pw_uid, gid: pw.pw_gid }
}

export const CAP_SETGID = 6
export const CAP_SETUID = 7
export const CAP_SETPCAP = 8
export const CAP_NET_ADMIN_BIT = CAP_NET_ADMIN
export const CAP_NET_RAW_BIT = CAP_NET_RAW

/** The three capability sets of the calling thread, one bit per capability (capget(2), version 3). */
export interface CapabilitySets {
  readonly effective: bigint
  readonly permitted: bigint
  readonly inheritable: bigint
}

const capabilityCalls = () => {
  const lib = koffi.load("libc.so.6")
  return {
    capget: lib.func("int capget(void *hdr, void *data)") as Fn<[Uint32Array, Uint32Array], number>,
    capset: lib.func("int capset(void *hdr, void *data)") as Fn<[Uint32Array, Uint32Array], number>
  }
}

const joinBits = (low: number, high: number): bigint => (BigInt(high >>> 0) << 32n) | BigInt(low >>> 0)

/** The calling thread's capability sets, or -errno. */
export const capabilitySets = (): CapabilitySets | number => {
  const { capget } = capabilityCalls()
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0])
  const data = new Uint32Array(6)
  if (capget(header, data) < 0) return -koffi.errno()
  return {
    effective: joinBits(data[0]!, data[3]!),
    permitted: joinBits(data[1]!, data[4]!),
    inheritable: joinBits(data[2]!, data[5]!)
  }
}

/** capset(2) on the calling thread; 0 or -errno. */
export const setCapabilitySets = (sets: CapabilitySets): number => {
  const { capset } = capabilityCalls()
  const header = new Uint32Array([LINUX_CAPABILITY_VERSION_3, 0])
  const lo = (v: bigint) => Number(v & 0xffffffffn)
  const hi = (v: bigint) => Number((v >> 32n) & 0xffffffffn)
  const data = new Uint32Array([
    lo(sets.effective),
    lo(sets.permitted),
    lo(sets.inheritable),
    hi(sets.effective),
    hi(sets.permitted),
    hi(sets.inheritable)
  ])
  return capset(header, data) < 0 ? -koffi.errno() : 0
}

/** prctl(2) options in use (linux/prctl.h). */
export const PR_SET_KEEPCAPS = 8
export const PR_CAPBSET_READ = 23
export const PR_CAPBSET_DROP = 24
export const PR_SET_NO_NEW_PRIVS = 38
export const PR_GET_NO_NEW_PRIVS = 39
export const PR_CAP_AMBIENT = 47
export const PR_CAP_AMBIENT_CLEAR_ALL = 4

/** Calls that change the process's credentials; each returns its result (>= 0) or -errno. */
export interface Credentials {
  readonly prctl: (option: number, arg2: number) => number
  /** Sets the supplementary groups to exactly `gids`. */
  readonly setgroups: (gids: ReadonlyArray<number>) => number
  readonly setgid: (gid: number) => number
  readonly setuid: (uid: number) => number
}

/**
 * Bindings for dropping privileges. glibc's setgroups/setgid/setuid change every thread of the process; prctl and
 * capset change only the calling thread, which must therefore be the main thread (the one that makes every call
 * that needs a capability).
 */
export const credentials = (): Credentials => {
  const lib = koffi.load("libc.so.6")
  const prctl_ = lib.func(
    "int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)"
  ) as Fn<[number, number, number, number, number], number>
  const setgroups_ = lib.func("int setgroups(size_t size, const uint32_t *list)") as Fn<[number, Uint32Array], number>
  const setgid_ = lib.func("int setgid(uint32_t gid)") as Fn<[number], number>
  const setuid_ = lib.func("int setuid(uint32_t uid)") as Fn<[number], number>
  const check = (r: number): number => (r < 0 ? -koffi.errno() : r)
  return {
    prctl: (option, arg2) => check(prctl_(option, arg2, 0, 0, 0)),
    setgroups: (gids) => check(setgroups_(gids.length, new Uint32Array(gids))),
    setgid: (gid) => check(setgid_(gid)),
    setuid: (uid) => check(setuid_(uid))
  }
}
