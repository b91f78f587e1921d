/**
 * The system resolver (getaddrinfo through node:dns `lookup`, so /etc/hosts and nsswitch apply as for any
 * program on the host), A records only.
 */
import { lookup } from "node:dns/promises"
import { Duration, Effect, Layer } from "effect"
import { parseIpv4 } from "../domain/Address.js"
import { ResolveError, Resolver } from "../services/Resolver.js"

const LOOKUP_TIMEOUT = Duration.seconds(15)

const errnoCode = (cause: unknown): string =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
    ? cause.code
    : "unknown"

export const lookup4 = (host: string): Effect.Effect<number, ResolveError> =>
  Effect.tryPromise({
    try: () => lookup(host, { family: 4 }),
    catch: (cause) => {
      const code = errnoCode(cause)
      return new ResolveError({
        host,
        reason: code === "ENOTFOUND" || code === "ENODATA" ? "notFound" : "failure",
        message: `${host}: ${code}`
      })
    }
  }).pipe(
    // whether the address can be a tunnel endpoint is the peer's question (Peer: isUnicast4), for any resolver
    Effect.flatMap(({ address }) => {
      const addr = parseIpv4(address)
      return addr === undefined
        ? Effect.fail(new ResolveError({ host, reason: "failure", message: `${host}: unusable answer ${address}` }))
        : Effect.succeed(addr)
    }),
    Effect.timeoutFail({
      duration: LOOKUP_TIMEOUT,
      onTimeout: () => new ResolveError({ host, reason: "failure", message: `${host}: lookup timed out` })
    })
  )

export const layer: Layer.Layer<Resolver> = Layer.succeed(Resolver, { lookup4 })
