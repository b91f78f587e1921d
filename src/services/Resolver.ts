import type { Effect } from "effect"
import { Context, Data } from "effect"

export class ResolveError extends Data.TaggedError("ResolveError")<{
  readonly host: string
  /** notFound: the name has no A record (NXDOMAIN / NODATA); failure: the lookup itself failed */
  readonly reason: "notFound" | "failure"
  readonly message: string
}> {}

/** Resolves the remote endpoint's host name to an IPv4 address (u32). */
export class Resolver extends Context.Tag("kiwitun/Resolver")<Resolver, {
  readonly lookup4: (host: string) => Effect.Effect<number, ResolveError>
}>() {}
