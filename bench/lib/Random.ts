/** xorshift32: the same sequence on every run and machine, for reproducible benchmark tables. */
export const makeRandom = (seed: number) => {
  let s = seed >>> 0 || 1
  return (): number => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return s >>> 0
  }
}
