import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { notifyAddress, notifyMessage, SUN_PATH_SIZE, sockaddrUn } from "../../src/domain/SdNotify.js"

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex")
const right = <A, E>(e: Either.Either<A, E>): A => {
  if (Either.isLeft(e)) throw new Error(String(e.left))
  return e.right
}

describe("sockaddrUn", () => {
  it("encodes a path NUL-terminated after the family (AF_UNIX = 1, little-endian)", () => {
    const a = right(sockaddrUn("/run/x"))
    expect(hex(a)).toBe("0100" + Buffer.from("/run/x").toString("hex") + "00")
    expect(a.length).toBe(2 + 6 + 1)
  })
  it("encodes '@name' as an abstract address: a leading NUL, no terminating one, length counting the name only", () => {
    const a = right(sockaddrUn("@kiwitun/notify"))
    expect(hex(a)).toBe("0100" + "00" + Buffer.from("kiwitun/notify").toString("hex"))
    expect(a.length).toBe(2 + 1 + 14)
  })
  it("takes the longest names that fit sun_path and refuses longer ones", () => {
    const longest = "/" + "a".repeat(SUN_PATH_SIZE - 2)
    expect(right(sockaddrUn(longest)).length).toBe(2 + SUN_PATH_SIZE)
    expect(Either.isLeft(sockaddrUn(longest + "a"))).toBe(true)
    expect(right(sockaddrUn("@" + "b".repeat(SUN_PATH_SIZE - 1))).length).toBe(2 + SUN_PATH_SIZE)
    expect(Either.isLeft(sockaddrUn("@" + "b".repeat(SUN_PATH_SIZE)))).toBe(true)
  })
  it("counts bytes, not characters", () => {
    const name = "/" + "é".repeat(53) // 107 bytes
    expect(right(sockaddrUn(name)).length).toBe(2 + 108)
    expect(Either.isLeft(sockaddrUn(name + "é"))).toBe(true)
  })
  it("refuses empty names and NUL bytes in paths", () => {
    expect(Either.isLeft(sockaddrUn(""))).toBe(true)
    expect(Either.isLeft(sockaddrUn("@"))).toBe(true)
    expect(Either.isLeft(sockaddrUn("/a\u0000b"))).toBe(true)
  })
})

describe("notifyAddress", () => {
  it("accepts absolute paths and abstract names", () => {
    expect(Either.isRight(notifyAddress("/run/systemd/notify"))).toBe(true)
    expect(Either.isRight(notifyAddress("@/org/freedesktop/systemd1/notify/123"))).toBe(true)
  })
  it("refuses relative paths and vsock addresses with a reason", () => {
    expect(Either.getLeft(notifyAddress("run/notify"))._tag).toBe("Some")
    const vsock = notifyAddress("vsock:2:1234")
    expect(Either.isLeft(vsock) && vsock.left).toMatch(/vsock/)
  })
})

describe("notifyMessage", () => {
  it("writes one KEY=VALUE line per field, in order", () => {
    expect(notifyMessage([["MAINPID", "42"], ["READY", "1"], ["STATUS", "ktun0 up"]])).toBe(
      "MAINPID=42\nREADY=1\nSTATUS=ktun0 up\n"
    )
  })
  it("keeps a value on one line", () => {
    expect(notifyMessage([["STATUS", "a\nb\r\nc"]])).toBe("STATUS=a b c\n")
  })
  it("drops keys the protocol does not allow", () => {
    expect(notifyMessage([["ready", "1"], ["X-Y", "2"], ["STOPPING", "1"]])).toBe("STOPPING=1\n")
  })
})
