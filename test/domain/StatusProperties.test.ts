/**
 * Property tests of the control-socket report (src/domain/Status.ts), 10,000 cases each: what `kiwitun status`
 * decodes from any answer (a report or a typed parse error, never a throw), round trips of arbitrary reports, and the
 * text forms built from them.
 */
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, ParseResult, Schema } from "effect"
import { dropName } from "../../src/domain/Drops.js"
import type { StatusReport } from "../../src/domain/Status.js"
import { formatStatus, StatusReportJson, summaryLine } from "../../src/domain/Status.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const

const decode = Schema.decodeUnknownEither(StatusReportJson)
const count = fc.oneof(fc.nat(1000), fc.maxSafeNat())

const arbReport: fc.Arbitrary<StatusReport> = fc.record({
  version: fc.string(),
  pid: fc.integer(),
  ifname: fc.fullUnicodeString({ maxLength: 16 }),
  ifindex: fc.integer(),
  mode: fc.constantFrom("4in4", "6in4", "4in4+6in4"),
  mtu: fc.integer(),
  remote: fc.string(),
  local: fc.string(),
  user: fc.string(),
  uid: fc.integer(),
  startedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  // JSON has no -0: it reads back as 0
  uptimeSeconds: fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => x + 0),
  memory: fc.record({ rssBytes: count, heapUsedBytes: count }),
  counters: fc.record({
    tunRxPackets: count,
    encapPackets: count,
    encapBytes: count,
    netRxPackets: count,
    decapPackets: count,
    decapBytes: count,
    icmpSent: count,
    // The daemon's reasons, and any other name; "__proto__" aside, which no reason is and which an object built from
    // JSON cannot hold as a plain key.
    drops: fc.dictionary(
      fc.oneof(fc.constantFrom(...dropName), fc.string({ minLength: 1, maxLength: 24 }))
        .filter((k) => k !== "__proto__"),
      count,
      { maxKeys: 6 }
    )
  })
})

const expectParseError = (e: Either.Either<StatusReport, ParseResult.ParseError>) => {
  expect(Either.isLeft(e)).toBe(true)
  if (Either.isLeft(e)) expect(ParseResult.isParseError(e.left)).toBe(true)
}

describe("StatusReportJson: properties", () => {
  it.prop("decodes every report the daemon can encode to the same report", { r: arbReport }, ({ r }) => {
    expect(decode(JSON.stringify(r))).toEqual(Either.right(r))
  }, RUNS)

  it.prop("any answer is a report or a typed parse error, never a throw", {
    text: fc.oneof(fc.string(), fc.fullUnicodeString(), fc.json(), arbReport.map((r) => JSON.stringify(r)))
  }, ({ text }) => {
    const e = decode(text)
    if (Either.isLeft(e)) expect(ParseResult.isParseError(e.left)).toBe(true)
    else expect(decode(JSON.stringify(e.right))).toEqual(e)
  }, RUNS)

  it.prop("an answer cut short is refused", { r: arbReport, cut: fc.nat() }, ({ cut, r }) => {
    const text = JSON.stringify(r)
    expectParseError(decode(text.slice(0, cut % text.length)))
  }, RUNS)

  it.prop("a report missing a field, or with a count that is negative, fractional or not a number, is refused", {
    r: arbReport,
    field: fc.constantFrom(
      "version",
      "pid",
      "ifname",
      "ifindex",
      "mode",
      "mtu",
      "remote",
      "local",
      "user",
      "uid",
      "startedAt",
      "uptimeSeconds",
      "memory",
      "counters"
    ),
    counter: fc.constantFrom("tunRxPackets", "encapPackets", "encapBytes", "netRxPackets", "decapPackets", "icmpSent"),
    bad: fc.oneof(fc.integer({ max: -1 }), fc.double({ noInteger: true, noNaN: true }), fc.string(), fc.constant(null)),
    how: fc.constantFrom("missing", "bad-count", "bad-drop")
  }, ({ bad, counter, field, how, r }) => {
    const broken: Record<string, unknown> = { ...r, counters: { ...r.counters, drops: { ...r.counters.drops } } }
    if (how === "missing") delete broken[field]
    else if (how === "bad-count") (broken["counters"] as Record<string, unknown>)[counter] = bad
    else ((broken["counters"] as Record<string, unknown>)["drops"] as Record<string, unknown>)["encap_no_route"] = bad
    expectParseError(decode(JSON.stringify(broken)))
  }, RUNS)

  it.prop("the table and the one-line summary show any report, every non-zero drop included", {
    r: arbReport
  }, ({ r }) => {
    const table = formatStatus(r)
    expect(table.endsWith("\n")).toBe(true)
    for (const [name, n] of Object.entries(r.counters.drops)) if (n > 0) expect(table).toContain(`  ${name}`)
    const line = summaryLine(r)
    expect(line.startsWith(`${r.ifname} up, remote ${r.remote}; `)).toBe(true)
  }, RUNS)
})
