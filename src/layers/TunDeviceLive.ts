/**
 * The real TUN device: /dev/net/tun with IFF_TUN | IFF_NO_PI, configured through ioctl (MTU, queue length, flags)
 * and rtnetlink (addresses), read and written with non-blocking syscalls on the event loop.
 */
import { Chunk, Config, Effect, Layer } from "effect"
import type { ConfigError, Scope } from "effect"
import { formatIpv4, formatIpv6, ipv4FromBytes } from "../domain/Address.js"
import { HEADROOM } from "../domain/Encap.js"
import * as Netlink from "../domain/Netlink.js"
import type { TunOptions, WriteReport } from "../services/TunDevice.js"
import { TunDevice, TunError } from "../services/TunDevice.js"
import * as Ffi from "./Ffi.js"
import * as NetlinkSocket from "./NetlinkSocket.js"

/** Slot stride alignment in the read ring. */
const SLOT_ALIGN = 64

/** errno values after which the device is gone (closed fd, detached or unregistered device). */
const DEVICE_GONE: ReadonlySet<number> = new Set([
  Ffi.Errno.EBADF,
  Ffi.Errno.EBADFD,
  Ffi.Errno.EIO,
  Ffi.Errno.ENODEV,
  Ffi.Errno.ENXIO,
  Ffi.Errno.EFAULT
])

/**
 * Creates the device and returns the service; the device is removed when the scope closes (a non-persistent TUN
 * device lives as long as its fd).
 */
export const make = (opts: TunOptions): Effect.Effect<TunDevice["Type"], TunError, Scope.Scope> =>
  Effect.flatMap(open(opts), attach)

/** Creates, configures and brings up the device; its fd is closed (and the device removed) when the scope closes. */
export const open = (opts: TunOptions): Effect.Effect<AttachedDevice, TunError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const fail = (op: TunError["op"], errno: number, what: string) =>
      new TunError({ op, errno, message: `${what}: ${Ffi.describeErrno(lib, errno)}` })

    if (opts.name !== undefined && Buffer.byteLength(opts.name) >= Ffi.IFNAMSIZ) {
      return yield* new TunError({
        op: "open",
        errno: Ffi.Errno.EINVAL,
        message: `interface name "${opts.name}" is longer than ${Ffi.IFNAMSIZ - 1} bytes`
      })
    }
    if (!Number.isInteger(opts.mtu) || opts.mtu < 68 || opts.mtu > 65535) {
      return yield* new TunError({ op: "configure", errno: Ffi.Errno.EINVAL, message: `bad MTU ${opts.mtu}` })
    }
    if (!Number.isInteger(opts.batch) || opts.batch < 1) {
      return yield* new TunError({ op: "configure", errno: Ffi.Errno.EINVAL, message: `bad batch ${opts.batch}` })
    }

    // Offloads first; a kernel that refuses them (or the virtio header size) gets a plain device instead.
    let opened = openDevice(lib, opts.name, opts.offload === true)
    if (typeof opened === "string" && opts.offload === true) {
      yield* Effect.logWarning("TUN offloads refused, using plain packets").pipe(Effect.annotateLogs({ error: opened }))
      opened = openDevice(lib, opts.name, false)
    }
    if (typeof opened === "string") return yield* new TunError({ op: "open", errno: lastErrno, message: opened })
    const { ifr, offload, offloadUdp } = opened
    const fd = yield* Effect.acquireRelease(Effect.succeed(opened.fd), (fd) => Effect.sync(() => lib.close(fd)))

    // the kernel writes the final name back (tunN when none was asked for)
    const name = ifName(ifr)
    const ifindex = lib.ifNameToIndex(name)
    if (ifindex < 0) return yield* fail("open", -ifindex, `if_nametoindex ${name}`)

    yield* configure(lib, name, opts, fail)
    yield* assignAddresses(lib, name, ifindex, opts)
    yield* withControlSocket(lib, fail, (ctl) => {
      const req = ifreq(name)
      const get = lib.ioctl(ctl, Ffi.SIOCGIFFLAGS, req)
      if (get < 0) return fail("configure", -get, `SIOCGIFFLAGS ${name}`)
      const flags = new DataView(req.buffer).getUint16(16, true)
      new DataView(req.buffer).setUint16(16, flags | Ffi.IFF_UP, true)
      const up = lib.ioctl(ctl, Ffi.SIOCSIFFLAGS, req)
      return up < 0 ? fail("configure", -up, `SIOCSIFFLAGS ${name} up`) : undefined
    })

    return { fd, name, ifindex, mtu: opts.mtu, batch: opts.batch, offload, offloadUdp }
  })

/** An open, configured TUN device: what `attach` needs to read and write it. */
export interface AttachedDevice {
  readonly fd: number
  readonly name: string
  readonly ifindex: number
  readonly mtu: number
  readonly batch: number
  readonly offload: boolean
  readonly offloadUdp: boolean
}

/**
 * The service over a TUN fd opened elsewhere (by `make`, or by another thread of this process: fds are shared by
 * all threads). Watches the fd until the scope closes; never closes it.
 */
export const attach = (device: AttachedDevice): Effect.Effect<TunDevice["Type"], TunError, Scope.Scope> =>
  Effect.gen(function*() {
    const lib = Ffi.libc()
    const { fd, ifindex, name, offload, offloadUdp } = device
    const fail = (op: TunError["op"], errno: number, what: string) =>
      new TunError({ op, errno, message: `${what}: ${Ffi.describeErrno(lib, errno)}` })
    // Released before the fd (finalizers run in reverse order), so libuv never watches a closed descriptor.
    const poller = yield* Ffi.makePoller(fd).pipe(
      Effect.mapError((e) => new TunError({ op: "open", errno: e.errno, message: e.message }))
    )

    // Plain: [HEADROOM][packet up to the MTU]. Offload: [8][virtio_net_hdr][super-packet up to 64 KB], so the
    // packet after the header still has HEADROOM bytes in front of it for the outer header.
    const lead = offload ? HEADROOM - VNET_HDR_SIZE : HEADROOM
    const largest = offload ? VNET_HDR_SIZE + 65535 : device.mtu
    const stride = Math.ceil((lead + largest) / SLOT_ALIGN) * SLOT_ALIGN
    const capacity = stride - lead
    const ring = new ArrayBuffer(stride * device.batch)
    const slots: Array<Uint8Array> = []
    for (let i = 0; i < device.batch; i++) slots.push(new Uint8Array(ring, i * stride + lead, capacity))

    /** Reads until EAGAIN or a full batch; returns the packets, or a TunError when the device is gone. */
    const drain = (): Array<Uint8Array> | TunError => {
      const out: Array<Uint8Array> = []
      let i = 0
      // bounded even when every read returns a packet to skip
      for (let attempts = 0; i < device.batch && attempts < 2 * device.batch; attempts++) {
        const r = lib.read(fd, slots[i]!)
        if (r < 0) {
          const errno = -r
          if (errno === Ffi.Errno.EINTR) continue
          if (errno === Ffi.Errno.EAGAIN) break
          // report what was read; the next call meets the error again and fails
          if (out.length > 0) break
          // EBADFD/EIO/ENODEV...: the device was deleted under us (`ip link del`), say so
          return fail("read", errno, DEVICE_GONE.has(errno) ? `read ${name} (the TUN device is gone)` : `read ${name}`)
        }
        if (r === 0) break
        // A packet longer than the slot was cut by the kernel (it still returns the full length): drop it.
        if (r > capacity) continue
        out.push(new Uint8Array(ring, i * stride + lead, r))
        i++
      }
      return out
    }

    const readBatch: Effect.Effect<Chunk.Chunk<Uint8Array>, TunError> = Effect.suspend(() => {
      const got = drain()
      if (got instanceof TunError) return Effect.fail(got)
      if (got.length > 0) return Effect.succeed(Chunk.unsafeFromArray(got))
      // Nothing readable: wait for the level-triggered poll handle, then drain again. A poll error is not final
      // by itself; the next read tells whether the device is gone.
      return Effect.zipRight(poller.readable, readBatch)
    })

    const writeBatch = (packets: Chunk.Chunk<Uint8Array>): Effect.Effect<WriteReport, TunError> =>
      Effect.suspend(() => {
        const arr = Chunk.toReadonlyArray(packets)
        let written = 0
        let failed = 0
        let lastErrno = 0
        for (let i = 0; i < arr.length; i++) {
          const r = lib.write(fd, arr[i]!)
          if (r >= 0) {
            written++
            continue
          }
          const errno = -r
          if (errno === Ffi.Errno.EINTR) {
            i--
            continue
          }
          if (DEVICE_GONE.has(errno)) {
            return Effect.fail(fail("write", errno, `write ${name} (the TUN device is gone)`))
          }
          // EINVAL (malformed packet), ENOBUFS/ENOMEM, EAGAIN: this packet is lost, the device is fine
          failed++
          lastErrno = errno
        }
        return Effect.succeed({ written, failed, lastErrno })
      })

    return TunDevice.of({ name, ifindex, mtu: device.mtu, offload, offloadUdp, readBatch, writeBatch })
  })

/** The TUN device as a layer; building it twice creates two devices. */
export const layer = (opts: TunOptions): Layer.Layer<TunDevice, TunError> => Layer.scoped(TunDevice, make(opts))

/** The layer with its options read from a Config (e.g. `Config.all({ ... })`). */
export const layerConfig = (
  config: Config.Config<TunOptions>
): Layer.Layer<TunDevice, TunError | ConfigError.ConfigError> =>
  Layer.scoped(TunDevice, Effect.flatMap(config, make))

/** virtio_net_hdr with num_buffers (TUNSETVNETHDRSZ 12 keeps the IP header 4-byte aligned after it). */
const VNET_HDR_SIZE = 12

let lastErrno = 0

interface Opened {
  readonly fd: number
  readonly ifr: Uint8Array
  readonly offload: boolean
  /** TUN_F_USO4 | TUN_F_USO6 accepted too. */
  readonly offloadUdp: boolean
}

/**
 * open + TUNSETIFF (+ the virtio header size and the offload flags): the fd, the ifreq holding the final name and the
 * offloads in force, or a one-line reason (the fd is closed then; `lastErrno` tells the errno).
 */
const openDevice = (
  lib: Ffi.Libc,
  name: string | undefined,
  offload: boolean
): Opened | string => {
  const fd = lib.open("/dev/net/tun", Ffi.O_RDWR | Ffi.O_NONBLOCK | Ffi.O_CLOEXEC)
  if (fd < 0) {
    lastErrno = -fd
    return `open /dev/net/tun: ${Ffi.describeErrno(lib, -fd)}`
  }
  const ifr = new Uint8Array(Ffi.IFREQ_SIZE)
  if (name !== undefined) ifr.set(Buffer.from(name), 0)
  new DataView(ifr.buffer).setUint16(16, Ffi.IFF_TUN | Ffi.IFF_NO_PI | (offload ? Ffi.IFF_VNET_HDR : 0), true)
  const failed = (what: string, r: number) => {
    lib.close(fd)
    lastErrno = -r
    return `${what}: ${Ffi.describeErrno(lib, -r)}`
  }
  const set = lib.ioctl(fd, Ffi.TUNSETIFF, ifr)
  // EBUSY: a device of that name is still owned by another process (e.g. a previous daemon still exiting)
  if (set < 0) return failed(`TUNSETIFF ${name ?? "(kernel-chosen name)"}`, set)
  if (offload) {
    const size = new Uint8Array(4)
    new DataView(size.buffer).setInt32(0, VNET_HDR_SIZE, true)
    const sz = lib.ioctl(fd, Ffi.TUNSETVNETHDRSZ, size)
    if (sz < 0) return failed("TUNSETVNETHDRSZ", sz)
    // TSO and USO need CSUM. tun_set_offload refuses a bit it does not know with EINVAL, so a kernel before 6.2 (no
    // USO) gets the same request without the UDP bits; whatever it says to that one is the answer.
    const tcp = Ffi.TUN_F_CSUM | Ffi.TUN_F_TSO4 | Ffi.TUN_F_TSO6
    if (lib.ioctlInt(fd, Ffi.TUNSETOFFLOAD, tcp | Ffi.TUN_F_USO4 | Ffi.TUN_F_USO6) >= 0) {
      return { fd, ifr, offload, offloadUdp: true }
    }
    const off = lib.ioctlInt(fd, Ffi.TUNSETOFFLOAD, tcp)
    if (off < 0) return failed("TUNSETOFFLOAD", off)
  }
  return { fd, ifr, offload, offloadUdp: false }
}

const ifreq = (name: string): Uint8Array => {
  const out = new Uint8Array(Ffi.IFREQ_SIZE)
  out.set(Buffer.from(name), 0)
  return out
}

const ifName = (ifr: Uint8Array): string => {
  let end = 0
  while (end < Ffi.IFNAMSIZ && ifr[end] !== 0) end++
  return Buffer.from(ifr.subarray(0, end)).toString()
}

type Fail = (op: TunError["op"], errno: number, what: string) => TunError

/** Runs `f` with an AF_INET datagram socket (the usual handle for SIOC*IF* ioctls), closed afterwards. */
const withControlSocket = (
  lib: Ffi.Libc,
  fail: Fail,
  f: (ctl: number) => TunError | undefined
): Effect.Effect<void, TunError> =>
  Effect.acquireUseRelease(
    Effect.suspend(() => {
      const r = lib.socket(Ffi.AF_INET, Ffi.SOCK_DGRAM | Ffi.SOCK_CLOEXEC, 0)
      return r < 0 ? Effect.fail(fail("configure", -r, "control socket")) : Effect.succeed(r)
    }),
    (ctl) => Effect.suspend(() => {
      const e = f(ctl)
      return e === undefined ? Effect.void : Effect.fail(e)
    }),
    (ctl) => Effect.sync(() => lib.close(ctl))
  )

const configure = (lib: Ffi.Libc, name: string, opts: TunOptions, fail: Fail): Effect.Effect<void, TunError> =>
  withControlSocket(lib, fail, (ctl) => {
    const mtu = ifreq(name)
    new DataView(mtu.buffer).setInt32(16, opts.mtu, true)
    const m = lib.ioctl(ctl, Ffi.SIOCSIFMTU, mtu)
    if (m < 0) return fail("configure", -m, `SIOCSIFMTU ${name} ${opts.mtu}`)
    const qlen = ifreq(name)
    new DataView(qlen.buffer).setInt32(16, opts.txQueueLen, true)
    const q = lib.ioctl(ctl, Ffi.SIOCSIFTXQLEN, qlen)
    if (q < 0) return fail("configure", -q, `SIOCSIFTXQLEN ${name} ${opts.txQueueLen}`)
    return undefined
  })

const assignAddresses = (
  lib: Ffi.Libc,
  name: string,
  ifindex: number,
  opts: TunOptions
): Effect.Effect<void, TunError> => {
  if (opts.addresses.length === 0) return Effect.void
  return Effect.scoped(
    Effect.gen(function*() {
      const nl = yield* NetlinkSocket.open(lib, { groups: 0 })
      for (const a of opts.addresses) {
        const text = `${a.family === 4 ? formatIpv4(ipv4FromBytes(a.addr)) : formatIpv6(a.addr)}/${a.prefix}`
        const probe = Netlink.buildNewAddr({ ...a, ifindex, seq: 0 })
        if (probe === undefined) {
          return yield* new TunError({ op: "configure", errno: Ffi.Errno.EINVAL, message: `bad address ${text}` })
        }
        yield* nl.request("RTM_NEWADDR", (seq) => Netlink.withSeq(probe, seq)).pipe(
          Effect.mapError((e) =>
            new TunError({ op: "configure", errno: e.errno, message: `add ${text} to ${name}: ${e.message}` })
          )
        )
      }
    })
  ).pipe(
    Effect.catchTag("NetlinkSocketError", (e) =>
      Effect.fail(new TunError({ op: "configure", errno: e.errno, message: `rtnetlink: ${e.message}` }))
    )
  )
}
