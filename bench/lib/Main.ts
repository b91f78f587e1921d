/** The entry point shared by the benchmark scripts: exit 0, 130 when interrupted (Ctrl-C), or 1 with one line. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import type { Effect } from "effect"
import { Cause, Exit, Option } from "effect"

const messageOf = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e)

export const run = <E>(name: string, main: Effect.Effect<void, E>): void =>
  NodeRuntime.runMain(main, {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit)) return onExit(0)
      if (Cause.isInterruptedOnly(exit.cause)) return onExit(130)
      const failure = Cause.failureOption(exit.cause)
      process.stderr.write(`${name}: ${Option.isSome(failure) ? messageOf(failure.value) : Cause.pretty(exit.cause)}\n`)
      onExit(1)
    }
  })
