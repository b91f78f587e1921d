/**
 * Property tests of the sd_notify(3) encoders (src/domain/SdNotify.ts), 10,000 cases each: socket addresses from any
 * text (a sockaddr_un laid out as unix(7) says, or a reason, never a throw) and messages from any fields.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc } from "effect"
import { notifyAddress, notifyMessage, SUN_PATH_SIZE, sockaddrUn } from "../../src/domain/SdNotify.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const

/** Text of every kind, with lengths around the 107 bytes that fit sun_path. */
const anyText = fc.oneof(
  fc.string({ maxLength: 130 }),
  fc.fullUnicodeString({ maxLength: 60 }),
  fc.string({ unit: "binary-ascii", maxLength: 20 }),
  fc.tuple(fc.constantFrom("/", "@", "/run/systemd/", "vsock:", ""), fc.string({ minLength: 90, maxLength: 120 }))
    .map(([a, b]) => a + b)
)

describe("sockaddrUn and notifyAddress: properties", () => {
  it.prop("lays out any path or abstract name as unix(7) says, or refuses it with a reason", {
    text: anyText
  }, ({ text }) => {
    const abstract = text.startsWith("@")
    const name = Buffer.from(abstract ? text.slice(1) : text, "utf8")
    const fits = name.length >= 1 && name.length <= SUN_PATH_SIZE - 1 && (abstract || !name.includes(0))
    const r = sockaddrUn(text)
    expect(Either.isRight(r)).toBe(fits)
    if (Either.isLeft(r)) {
      expect(r.left.length).toBeGreaterThan(0)
      return
    }
    const sa = r.right
    expect(sa.length).toBe(3 + name.length)
    expect([sa[0], sa[1]]).toEqual([1, 0]) // AF_UNIX, little-endian
    if (abstract) {
      expect(sa[2]).toBe(0)
      expect(Buffer.from(sa.subarray(3)).equals(name)).toBe(true)
    } else {
      expect(Buffer.from(sa.subarray(2, 2 + name.length)).equals(name)).toBe(true)
      expect(sa[sa.length - 1]).toBe(0)
    }
  }, RUNS)

  it.prop("NOTIFY_SOCKET: an absolute path or an abstract name, anything else refused", {
    text: anyText
  }, ({ text }) => {
    const r = notifyAddress(text)
    if (!text.startsWith("/") && !text.startsWith("@")) expect(Either.isLeft(r)).toBe(true)
    else expect(r).toEqual(sockaddrUn(text))
  }, RUNS)
})

const key = fc.oneof(
  fc.stringMatching(/^[A-Z][A-Z0-9_]{0,15}$/),
  fc.constantFrom("READY", "STATUS", "MAINPID", "ERRNO", "ready", "STATUS=", "", "1X", "A B"),
  fc.string({ maxLength: 8 })
)
const value = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: "binary-ascii", maxLength: 20 }))

describe("notifyMessage: properties", () => {
  it.prop("one KEY=VALUE line per well-formed key, in order, each value on one line", {
    fields: fc.array(fc.tuple(key, value), { maxLength: 6 })
  }, ({ fields }) => {
    const message = notifyMessage(fields)
    const kept = fields.filter(([k]) => /^[A-Z][A-Z0-9_]*$/.test(k))
    expect(message.endsWith("\n") || message === "").toBe(true)
    const lines = message === "" ? [] : message.slice(0, -1).split("\n")
    expect(lines.length).toBe(kept.length)
    lines.forEach((line, i) => {
      const [k, v] = kept[i]!
      expect(line).toBe(`${k}=${v.replace(/[\r\n]+/g, " ")}`)
      expect(line).not.toMatch(/\r/)
    })
  }, RUNS)
})
