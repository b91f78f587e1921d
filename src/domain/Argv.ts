/** Command-line words as the C original (getopt) accepts them, rewritten for the option parser. */

const BOOL_SHORT = new Set(["4", "6", "d", "v", "h"])
const VALUE_SHORT = new Set(["r", "l", "t", "i"])

/**
 * getopt-style short options: `-46d` = `-4 -6 -d`, `-r192.0.2.2` = `-r 192.0.2.2`, `-46r host`; the word after an
 * option that needs a value is that value, left as it is (`-r -46`).
 */
export const expandShortOptions = (argv: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      out.push(...argv.slice(i))
      break
    }
    if (!arg.startsWith("-") || arg.startsWith("--") || arg.length < 2 || !BOOL_SHORT.has(arg[1]!) &&
        !VALUE_SHORT.has(arg[1]!)) {
      out.push(arg)
      continue
    }
    let j = 1
    for (; j < arg.length; j++) {
      const c = arg[j]!
      if (VALUE_SHORT.has(c)) {
        out.push(`-${c}`)
        if (j + 1 < arg.length) out.push(arg.slice(j + 1))
        // getopt: with nothing attached, the next word is the value whatever it looks like (`-i -46` names "-46")
        else if (i + 1 < argv.length) out.push(argv[++i]!)
        j = arg.length
        break
      }
      if (!BOOL_SHORT.has(c)) break
      out.push(`-${c}`)
    }
    if (j < arg.length) out.push(`-${arg.slice(j)}`) // unknown letter: let the parser report it
  }
  return out
}

/** The daemon's switches as the parser knows them: which take a value, which may repeat, and the short aliases. */
export interface SwitchTable {
  /** Long names of switches that take a value (`--remote x`, `--remote=x`). */
  readonly values: ReadonlySet<string>
  /** Long names of switches without a value. */
  readonly flags: ReadonlySet<string>
  /** Long names of switches given more than once on purpose (every occurrence counts). */
  readonly repeatable: ReadonlySet<string>
  /** One-letter alias -> long name. */
  readonly aliases: ReadonlyMap<string, string>
}

/**
 * getopt leaves a repeated switch to the program, and the C original keeps the last value (`-r A -r B` talks to B;
 * `-d -d` is `-d`). The option parser refuses repeats, so all but the last occurrence of a non-repeatable switch are
 * dropped here, after `expandShortOptions`. Words after `--` and unknown switches are left for the parser.
 */
export const keepLastOccurrence = (argv: ReadonlyArray<string>, table: SwitchTable): Array<string> => {
  // each switch occurrence as [start, length] in argv, keyed by its long name
  const groups: Array<{ readonly name: string; readonly start: number; readonly length: number }> = []
  let end = argv.length
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") {
      end = i
      break
    }
    let name: string | undefined
    let attached = false
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=")
      name = eq > 2 ? arg.slice(2, eq) : arg.slice(2)
      attached = eq > 2
    } else if (arg.length === 2 && arg[0] === "-") name = table.aliases.get(arg[1]!)
    if (name === undefined || !(table.values.has(name) || table.flags.has(name))) continue
    const takesValue = table.values.has(name)
    const length = takesValue && !attached && i + 1 < argv.length ? 2 : 1
    groups.push({ name, start: i, length })
    i += length - 1
  }
  const last = new Map<string, number>()
  groups.forEach((g, index) => last.set(g.name, index))
  const drop = new Set<number>()
  groups.forEach((g, index) => {
    if (table.repeatable.has(g.name) || last.get(g.name) === index) return
    for (let k = 0; k < g.length; k++) drop.add(g.start + k)
  })
  return argv.filter((_, i) => i >= end || !drop.has(i))
}
