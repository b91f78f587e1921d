/**
 * Property tests of `expandShortOptions` (src/domain/Argv.ts) against a model of getopt(3) with the C original's
 * option string "46dvhr:l:t:i:": command lines generated word by word together with the words the option parser must
 * get, 10,000 cases each, plus arbitrary words.
 */
import { describe, expect, it } from "@effect/vitest"
import { FastCheck as fc } from "effect"
import type { SwitchTable } from "../../src/domain/Argv.js"
import { expandShortOptions, keepLastOccurrence } from "../../src/domain/Argv.js"

const RUNS = { fastCheck: { numRuns: 10_000 } } as const

const BOOL = "46dvh".split("")
const VALUE = "rlti".split("")

/** A piece of a command line: the words as typed, and what the option parser must receive for them. */
interface Piece {
  readonly typed: ReadonlyArray<string>
  readonly parsed: ReadonlyArray<string>
}

const anyWord = fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("-", "--", "-4", "-46", "-r", "-x", "--mtu"))

/** Flags bundled getopt-style, maybe ending in an option that takes a value (attached, or the next word). */
const bundle: fc.Arbitrary<Piece> = fc.record({
  flags: fc.array(fc.constantFrom(...BOOL), { maxLength: 4 }),
  value: fc.option(fc.record({ letter: fc.constantFrom(...VALUE), attached: fc.option(fc.string({ minLength: 1 })) })),
  next: anyWord
}).filter(({ flags, value }) => flags.length > 0 || value !== null).map(({ flags, next, value }) => {
  const parsed = flags.map((f) => `-${f}`)
  let typed = `-${flags.join("")}`
  if (value === null) return { typed: [typed], parsed }
  typed += value.letter
  parsed.push(`-${value.letter}`)
  if (value.attached !== null) return { typed: [typed + value.attached], parsed: [...parsed, value.attached] }
  // getopt: an option that needs a value and has none attached takes the next word, whatever it looks like.
  return { typed: [typed, next], parsed: [...parsed, next] }
})

/** Flags, then a letter no option has: the flags are split off, the rest is left for the parser to report. */
const unknownLetter: fc.Arbitrary<Piece> = fc.record({
  flags: fc.array(fc.constantFrom(...BOOL), { minLength: 1, maxLength: 3 }),
  letter: fc.char().filter((c) => !BOOL.includes(c) && !VALUE.includes(c) && c !== "-"),
  rest: fc.string({ maxLength: 5 })
}).map(({ flags, letter, rest }) => ({
  typed: [`-${flags.join("")}${letter}${rest}`],
  parsed: [...flags.map((f) => `-${f}`), `-${letter}${rest}`]
}))

/** Words the expansion leaves alone: long options, operands, a lone dash. */
const untouched: fc.Arbitrary<Piece> = fc.oneof(
  fc.string({ minLength: 1, maxLength: 12 }).map((s) => `--${s}`),
  fc.string({ maxLength: 12 }).filter((s) => !s.startsWith("-")),
  fc.constant("-")
).map((w) => ({ typed: [w], parsed: [w] }))

/** `--` ends the options: it and everything after it pass through as they are. */
const terminated = fc.array(anyWord, { maxLength: 4 }).map((rest): Piece => ({
  typed: ["--", ...rest],
  parsed: ["--", ...rest]
}))

const commandLine = fc.tuple(
  fc.array(fc.oneof(bundle, unknownLetter, untouched), { maxLength: 6 }),
  fc.option(terminated)
).map(([pieces, end]) => {
  const all = end === null ? pieces : [...pieces, end]
  return { typed: all.flatMap((p) => p.typed), parsed: all.flatMap((p) => p.parsed) }
})

describe("expandShortOptions: the value of an option is the next word, as getopt takes it", () => {
  it("leaves a dash-led value alone", () => {
    // Found by the model below: "-46" was split, so `-i -46` named the tunnel "-4" and turned on 6in4.
    expect(expandShortOptions(["-r", "-46"])).toEqual(["-r", "-46"])
    expect(expandShortOptions(["-4i", "-46", "-d"])).toEqual(["-4", "-i", "-46", "-d"])
    expect(expandShortOptions(["-t", "--", "-46"])).toEqual(["-t", "--", "-4", "-6"])
  })
})

describe("expandShortOptions: properties", () => {
  it.prop("expands a command line as getopt reads it", { line: commandLine }, ({ line }) => {
    expect(expandShortOptions(line.typed)).toEqual(line.parsed)
  }, RUNS)

  it.prop("never throws, and never loses, invents or reorders characters", {
    words: fc.array(fc.oneof(anyWord, fc.fullUnicodeString({ maxLength: 6 })), { maxLength: 8 })
  }, ({ words }) => {
    const out = expandShortOptions(words)
    // Splitting only inserts dashes in front of the pieces it cuts off.
    expect(out.join("").replace(/-/g, "")).toBe(words.join("").replace(/-/g, ""))
    expect(out.length).toBeGreaterThanOrEqual(words.length)
    // A "--" after operands alone ends the options (after "-r" it would be r's value): the rest is untouched.
    const end = words.indexOf("--")
    if (end >= 0 && words.slice(0, end).every((w) => !w.startsWith("-") || w.startsWith("--"))) {
      expect(out.slice(end)).toEqual(words.slice(end))
    }
  }, RUNS)
})

const TABLE: SwitchTable = {
  values: new Set(["remote", "ifname", "address"]),
  flags: new Set(["4in4", "no-daemon"]),
  repeatable: new Set(["address"]),
  aliases: new Map([["4", "4in4"], ["r", "remote"], ["i", "ifname"], ["d", "no-daemon"]])
}
const switchWord = fc.constantFrom("-4", "-d", "-r", "-i", "--remote", "--remote=192.0.2.9", "--4in4", "--address",
  "--address=2001:db8::1/64", "--no-daemon", "--ifname=ktun1", "--", "status", "--other")

describe("keepLastOccurrence: properties", () => {
  it.prop("keeps an in-order subsequence with every switch once (--address aside), and is idempotent", {
    words: fc.array(fc.oneof(switchWord, switchWord, fc.string({ maxLength: 6 })), { maxLength: 12 })
  }, ({ words }) => {
    const out = keepLastOccurrence(words, TABLE)
    // a subsequence: every output word found in order in the input
    let at = 0
    for (const w of out) {
      while (at < words.length && words[at] !== w) at++
      expect(at).toBeLessThan(words.length)
      at++
    }
    expect(keepLastOccurrence(out, TABLE)).toEqual(out)
    // before "--", known switches other than --address occur once; values are skipped as getopt would
    const seen = new Set<string>()
    for (let i = 0; i < out.length; i++) {
      const w = out[i]!
      if (w === "--") break
      const name = w.startsWith("--")
        ? w.slice(2).split("=")[0]!
        : w.length === 2 && w[0] === "-"
        ? TABLE.aliases.get(w[1]!) ?? ""
        : ""
      if (!(TABLE.values.has(name) || TABLE.flags.has(name))) continue
      if (name !== "address") {
        expect(seen.has(name), out.join(" ")).toBe(false)
        seen.add(name)
      }
      if (TABLE.values.has(name) && !w.includes("=")) i++
    }
  }, RUNS)
})
