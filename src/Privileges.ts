/**
 * Least privilege: which capabilities the daemon needs, and `--user`: once the device and every socket are open,
 * become an unprivileged user that keeps only CAP_NET_ADMIN (capabilities(7), "Effect of user ID changes").
 */
import { Data, Effect } from "effect"
import * as Ffi from "./layers/Ffi.js"

export class PrivilegeError extends Data.TaggedError("PrivilegeError")<{
  readonly step: "keepcaps" | "setgroups" | "setgid" | "setuid" | "capset" | "verify"
  readonly message: string
}> {}

const bit = (cap: number): bigint => 1n << BigInt(cap)

/**
 * What the daemon keeps after dropping to a user. CAP_NET_RAW is needed only to open the raw sockets, which are
 * open by then; CAP_NET_ADMIN stays for rtnetlink requests a running tunnel may still make.
 */
export const KEPT_CAPABILITIES: ReadonlyArray<number> = [Ffi.CAP_NET_ADMIN_BIT]

export const keptMask: bigint = KEPT_CAPABILITIES.reduce((mask, cap) => mask | bit(cap), 0n)

/** The capabilities `--user` needs on top of the daemon's own, missing from the effective set. */
export const missingForUserSwitch = (): Array<"CAP_SETUID" | "CAP_SETGID"> => {
  const sets = Ffi.capabilitySets()
  const effective = typeof sets === "number" ? 0n : sets.effective
  const out: Array<"CAP_SETUID" | "CAP_SETGID"> = []
  if ((effective & bit(Ffi.CAP_SETUID)) === 0n) out.push("CAP_SETUID")
  if ((effective & bit(Ffi.CAP_SETGID)) === 0n) out.push("CAP_SETGID")
  return out
}

/**
 * Becomes `user` (its primary group as the only group) keeping `keep` in the permitted and effective sets and
 * nothing else: PR_SET_KEEPCAPS carries the permitted set across setuid, capset then makes exactly `keep` effective.
 * The bounding set shrinks to `keep` as well, no_new_privs is set and ambient capabilities are cleared, so nothing
 * this process could ever execute regains more.
 *
 * Capabilities and PR_SET_KEEPCAPS belong to the calling thread: this runs on the main thread, which makes every
 * privileged call. glibc's setuid/setgid/setgroups change all threads, and the other threads (libuv's pool, V8's
 * helpers), which never had KEEPCAPS, lose every capability.
 */
export const dropTo = (user: Ffi.UserAccount, keep: bigint = keptMask): Effect.Effect<void, PrivilegeError> =>
  Effect.suspend(() => {
    const creds = Ffi.credentials()
    const lib = Ffi.libc()
    const fail = (step: PrivilegeError["step"], errno: number, what: string) =>
      Effect.fail(new PrivilegeError({ step, message: `${what}: ${Ffi.describeErrno(lib, errno)}` }))

    let r = creds.prctl(Ffi.PR_SET_KEEPCAPS, 1)
    if (r < 0) return fail("keepcaps", -r, "prctl(PR_SET_KEEPCAPS)")
    // The bounding set needs CAP_SETPCAP to shrink; without it (a confined container) the rest still holds.
    for (let cap = 0; cap < 64; cap++) {
      const present = creds.prctl(Ffi.PR_CAPBSET_READ, cap)
      if (present < 0) break // EINVAL: past the kernel's last capability
      if (present === 1 && (keep & bit(cap)) === 0n && creds.prctl(Ffi.PR_CAPBSET_DROP, cap) < 0) break
    }
    r = creds.setgroups([user.gid])
    if (r < 0) return fail("setgroups", -r, `setgroups(${user.gid})`)
    r = creds.setgid(user.gid)
    if (r < 0) return fail("setgid", -r, `setgid(${user.gid})`)
    r = creds.setuid(user.uid)
    if (r < 0) return fail("setuid", -r, `setuid(${user.uid})`)
    r = Ffi.setCapabilitySets({ effective: keep, permitted: keep, inheritable: 0n })
    if (r < 0) return fail("capset", -r, "capset")
    creds.prctl(Ffi.PR_SET_KEEPCAPS, 0)
    creds.prctl(Ffi.PR_CAP_AMBIENT, Ffi.PR_CAP_AMBIENT_CLEAR_ALL)
    creds.prctl(Ffi.PR_SET_NO_NEW_PRIVS, 1)

    const now = Ffi.capabilitySets()
    const uid = process.getuid?.() ?? -1
    const euid = process.geteuid?.() ?? -1
    const capsAsSet = typeof now !== "number" && now.effective === keep && now.permitted === keep
    if (!capsAsSet || uid !== user.uid || euid !== user.uid) {
      return Effect.fail(
        new PrivilegeError({
          step: "verify",
          message: `after dropping to ${user.name}: uid ${uid}, euid ${euid}, ` +
            `capabilities ${capsAsSet ? "" : "not "}as set`
        })
      )
    }
    return Effect.void
  })
