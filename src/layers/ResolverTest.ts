/** A scripted resolver: answers, NXDOMAIN or failure per host name, changeable at any time; counts lookups. */
import { Effect, Layer, Ref } from "effect"
import { formatIpv4, parseIpv4 } from "../domain/Address.js"
import { ResolveError, Resolver } from "../services/Resolver.js"

export type Answer = string | "notFound" | "failure"

export interface ResolverTestHandle {
  readonly service: Resolver["Type"]
  readonly set: (host: string, answer: Answer) => Effect.Effect<void>
  readonly lookups: Effect.Effect<number>
}

export const make = (initial: Record<string, Answer> = {}): Effect.Effect<ResolverTestHandle> =>
  Effect.gen(function*() {
    const answers = yield* Ref.make(new Map(Object.entries(initial)))
    const count = yield* Ref.make(0)
    const lookup4 = (host: string) =>
      Effect.gen(function*() {
        yield* Ref.update(count, (n) => n + 1)
        const answer = (yield* Ref.get(answers)).get(host) ?? "notFound"
        if (answer === "notFound" || answer === "failure") {
          return yield* new ResolveError({ host, reason: answer, message: `${host}: scripted ${answer}` })
        }
        const addr = parseIpv4(answer)
        if (addr === undefined) {
          return yield* new ResolveError({ host, reason: "failure", message: `${host}: bad scripted answer` })
        }
        return addr
      })
    return {
      service: { lookup4 },
      set: (host, answer) => Ref.update(answers, (m) => new Map(m).set(host, answer)),
      lookups: Ref.get(count)
    }
  })

export const layer = (handle: ResolverTestHandle): Layer.Layer<Resolver> => Layer.succeed(Resolver, handle.service)

/** For stacks that never resolve (fixed address or dynamic mode). */
export const none: Layer.Layer<Resolver> = Layer.succeed(Resolver, {
  lookup4: (host) =>
    Effect.fail(new ResolveError({ host, reason: "failure", message: `no resolver (${formatIpv4(0)})` }))
})
