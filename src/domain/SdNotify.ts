/**
 * The service manager's notification protocol (sd_notify(3)): newline-separated `KEY=VALUE` assignments in one
 * datagram to the AF_UNIX socket named by $NOTIFY_SOCKET. Pure: building messages and socket addresses.
 */
import { Either } from "effect"

/** sizeof(((struct sockaddr_un *)0)->sun_path) on Linux. */
export const SUN_PATH_SIZE = 108
const AF_UNIX = 1

/**
 * struct sockaddr_un for `address`, sized exactly (the length passed to sendto/bind). A leading '@' names an
 * abstract socket: the kernel's form is a NUL in sun_path[0] and the length counts only the name's bytes, with no
 * terminating NUL (unix(7)). A path is NUL-terminated and must fit sun_path with its NUL.
 */
export const sockaddrUn = (address: string): Either.Either<Uint8Array, string> => {
  if (address.length === 0) return Either.left("empty socket address")
  const abstract = address.startsWith("@")
  const name = Buffer.from(abstract ? address.slice(1) : address, "utf8")
  if (abstract && name.length === 0) return Either.left("abstract socket name is empty")
  // one byte of sun_path goes to a NUL either way: the leading one (abstract) or the terminating one (path)
  const room = SUN_PATH_SIZE - 1
  if (name.length > room) return Either.left(`socket address longer than ${room} bytes: ${address}`)
  if (!abstract && name.includes(0)) return Either.left(`socket path contains a NUL byte: ${JSON.stringify(address)}`)
  const out = new Uint8Array(2 + 1 + name.length)
  new DataView(out.buffer).setUint16(0, AF_UNIX, true)
  if (abstract) {
    out[2] = 0
    out.set(name, 3)
  } else {
    out.set(name, 2)
    out[2 + name.length] = 0
  }
  return Either.right(out)
}

/**
 * Where $NOTIFY_SOCKET points: an absolute path or an abstract name ('@'). The service manager also knows
 * `vsock:` addresses (for virtual machines); the daemon does not use them and says so.
 */
export const notifyAddress = (value: string): Either.Either<Uint8Array, string> => {
  if (value.startsWith("/") || value.startsWith("@")) return sockaddrUn(value)
  if (value.startsWith("vsock:")) return Either.left(`NOTIFY_SOCKET=${value}: vsock addresses are not supported`)
  return Either.left(`NOTIFY_SOCKET=${value}: neither an absolute path nor an abstract name ('@...')`)
}

export type NotifyField = readonly [key: string, value: string]

/**
 * `KEY=VALUE` lines, newline-terminated. A value is one line by definition of the protocol: line breaks in it become
 * spaces. Keys are upper-case ASCII letters, digits and '_' (the manager ignores anything else).
 */
export const notifyMessage = (fields: ReadonlyArray<NotifyField>): string =>
  fields
    .filter(([key]) => /^[A-Z][A-Z0-9_]*$/.test(key))
    .map(([key, value]) => `${key}=${value.replace(/[\r\n]+/g, " ")}\n`)
    .join("")
