/**
 * The bookkeeping of an rtnetlink mirror (host addresses, routes), pure: one dump, then the multicast notifications,
 * and a full re-dump whenever the mirror may have missed something. The socket side is in
 * src/layers/NetlinkFollower.ts; what a table holds and how a message changes it is the caller's `TableSpec`.
 *
 * Notifications that arrive while a dump runs are applied to the live table at once and replayed, in order, on top
 * of the dump's result when it completes: the dump may have read an entry before or after the change, and the
 * replay makes the result the state after the last notification either way.
 */
import { Either } from "effect"
import * as Netlink from "./Netlink.js"

/** Why a new dump is needed. */
export type RedumpReason =
  /** notifications were lost: ENOBUFS on the socket, or an NLMSG_OVERRUN */
  | "overrun"
  /** the kernel changed the table while dumping it (NLM_F_DUMP_INTR): the result may be inconsistent */
  | "interrupted"
  /** a datagram that does not split into messages: whatever it carried is lost */
  | "unreadable"
  /** the kernel refused or aborted the dump (NLMSG_ERROR, or an error code in NLMSG_DONE) */
  | "failed"
  /** no datagram of a running dump for too long (decided by the socket side) */
  | "stalled"
  /** an event after which the kernel changes the table without notifying (see the table's `trigger`) */
  | "silent-flush"

/** How one kind of rtnetlink object is mirrored. `A` is a decoded message, `T` the table. */
export interface TableSpec<A, T> {
  /** RTM_NEWADDR / RTM_NEWROUTE ... */
  readonly newType: number
  /** RTM_DELADDR / RTM_DELROUTE ... */
  readonly delType: number
  readonly parse: (msg: Netlink.Message) => Either.Either<A, Netlink.NetlinkParseError>
  /**
   * An empty table to collect a dump into; never `live`, which stays in use until the dump completes (passed so
   * that two tables can be alternated instead of allocating one per dump).
   */
  readonly fresh: (live: T) => T
  /** Applies one decoded message (`type` is newType or delType, `flags` its nlmsg_flags); true if `table` changed. */
  readonly apply: (table: T, type: number, flags: number, item: A) => boolean
  /** Other notifications (links, addresses ...) that call for a re-dump; null if this one does not. */
  readonly trigger?: (msg: Netlink.Message) => RedumpReason | null
}

export interface Fed {
  /** The live table changed (a notification, or a completed dump). */
  readonly changed: boolean
  /** A dump completed in this datagram and its result is now the live table. */
  readonly dumped: boolean
  /** A new dump should be requested now, and why; null if not. */
  readonly redump: RedumpReason | null
}

export interface TrackerStats {
  /** Completed dumps, the first one included. */
  readonly dumps: number
  /** Notifications applied (NEW/DEL messages outside a dump). */
  readonly notifications: number
  /** Messages skipped because they did not decode (unsupported families excepted), and unreadable datagrams. */
  readonly skipped: number
}

export interface Tracker<T> {
  /** Starts a dump with `seq` (the caller sends the request); a running one is abandoned. */
  readonly beginDump: (seq: number) => void
  /** Feeds one datagram. Never throws, whatever the bytes. */
  readonly feed: (datagram: Uint8Array) => Fed
  /** Notifications were lost: true if a dump should be requested now, false if the running one will be redone. */
  readonly overrun: () => boolean
  readonly dumping: () => boolean
  /** The live table. */
  readonly table: () => T
  readonly stats: () => TrackerStats
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

/** NLMSG_DONE carries the dump's final status as an int: negative errno when the dump was cut short. */
const doneStatus = (m: Netlink.Message): number =>
  m.payload.length >= 4
    ? new DataView(m.payload.buffer, m.payload.byteOffset, 4).getInt32(0, LITTLE_ENDIAN)
    : 0

export const make = <A, T>(spec: TableSpec<A, T>, initial: T): Tracker<T> => {
  let live = initial
  let dump: T | null = null
  let dumpSeq = -1
  let pending: Array<{ readonly type: number; readonly flags: number; readonly item: A }> = []
  /** Set while a dump runs when its result will be stale: redo it after NLMSG_DONE. */
  let again: RedumpReason | null = null
  let dumps = 0
  let notifications = 0
  let skipped = 0

  const decode = (m: Netlink.Message): A | undefined => {
    const r = spec.parse(m)
    if (Either.isRight(r)) return r.right
    // AF_UNSPEC dumps and the route groups also carry families nobody mirrors (MPLS, multicast routing)
    if (r.left.reason !== "unsupported-family") skipped++
    return undefined
  }

  /** A reason to re-dump: now when idle, after the running dump otherwise. */
  const resync = (reason: RedumpReason): RedumpReason | null => {
    if (dump === null) return reason
    again ??= reason
    return null
  }

  return {
    beginDump: (seq) => {
      dump = spec.fresh(live)
      dumpSeq = seq
      pending = []
      again = null
    },
    dumping: () => dump !== null,
    table: () => live,
    stats: () => ({ dumps, notifications, skipped }),
    overrun: () => resync("overrun") !== null,
    feed: (datagram) => {
      let changed = false
      let dumped = false
      let redump: RedumpReason | null = null
      const msgs = Netlink.splitMessages(datagram)
      if (Either.isLeft(msgs)) {
        skipped++
        return { changed, dumped, redump: resync("unreadable") }
      }
      for (const m of msgs.right) {
        // Dumps never carry deletions: a DEL with the dump's seq is a notification whose requester chose that seq.
        if (dump !== null && m.seq === dumpSeq && m.type !== spec.delType) {
          if ((m.flags & Netlink.NLM_F_DUMP_INTR) !== 0) again ??= "interrupted"
          if (m.type === spec.newType) {
            const a = decode(m)
            if (a !== undefined) spec.apply(dump, m.type, 0, a)
          } else if (m.type === Netlink.NLMSG_DONE) {
            if (doneStatus(m) < 0) {
              dump = null
              pending = []
              redump = "failed"
              continue
            }
            live = dump
            for (const p of pending) spec.apply(live, p.type, p.flags, p.item)
            dump = null
            pending = []
            dumps++
            changed = true
            dumped = true
            if (again !== null) {
              redump = again
              again = null
            }
          } else if (m.type === Netlink.NLMSG_ERROR) {
            const e = Netlink.parseError(m)
            if (Either.isLeft(e) || e.right.errno !== 0) {
              dump = null
              pending = []
              redump = "failed"
            }
          }
        } else if ((m.flags & Netlink.NLM_F_MULTI) !== 0) {
          // a part of a dump this tracker abandoned: notifications never carry NLM_F_MULTI
          continue
        } else if (m.type === spec.newType || m.type === spec.delType) {
          const a = decode(m)
          if (a === undefined) continue
          notifications++
          if (spec.apply(live, m.type, m.flags, a)) changed = true
          if (dump !== null) pending.push({ type: m.type, flags: m.flags, item: a })
        } else if (m.type === Netlink.NLMSG_OVERRUN) {
          redump ??= resync("overrun")
        } else if (spec.trigger !== undefined) {
          const reason = spec.trigger(m)
          if (reason !== null) redump ??= resync(reason)
        }
      }
      return { changed, dumped, redump }
    }
  }
}
