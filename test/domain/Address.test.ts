import { describe, expect, it } from "@effect/vitest"
import { isUnicast4, parseIpv4 } from "../../src/domain/Address.js"

const unicast = (text: string) => isUnicast4(parseIpv4(text)!)

describe("isUnicast4", () => {
  it("takes unicast addresses up to 223.255.255.255, refuses 0.0.0.0, multicast, 240/4 and broadcast", () => {
    for (const ok of ["0.0.0.1", "1.0.0.0", "44.0.0.1", "127.0.0.1", "192.0.2.1", "223.255.255.255"]) {
      expect(unicast(ok)).toBe(true)
    }
    for (const bad of ["0.0.0.0", "224.0.0.0", "239.255.255.255", "240.0.0.0", "254.1.2.3", "255.255.255.255"]) {
      expect(unicast(bad)).toBe(false)
    }
  })
})
