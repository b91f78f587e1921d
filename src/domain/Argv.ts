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
