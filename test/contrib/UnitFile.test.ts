/**
 * contrib/kiwitun@.service: what it must say (parsed here), and, where systemd-analyze exists (CI installs it),
 * what systemd itself thinks of it.
 */
import { execFileSync, spawnSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "vitest"
import { ci } from "../support/ci.js"

const root = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const unitPath = Path.join(root, "contrib", "kiwitun@.service")
const text = Fs.readFileSync(unitPath, "utf8")

type Unit = Map<string, Map<string, Array<string>>>

/** systemd's unit syntax, as far as this file uses it: sections, `Key=value` (repeatable), comments. */
const parseUnit = (source: string): Unit => {
  const unit: Unit = new Map()
  let section: Map<string, Array<string>> | undefined
  source.split("\n").forEach((raw, i) => {
    const line = raw.trim()
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return
    const header = /^\[([A-Za-z]+)\]$/.exec(line)
    if (header !== null) {
      section = new Map()
      unit.set(header[1]!, section)
      return
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(line)
    if (kv === null || section === undefined) throw new Error(`line ${i + 1}: not a unit-file line: ${raw}`)
    if (line.endsWith("\\")) throw new Error(`line ${i + 1}: continuation lines are not expected`)
    section.set(kv[1]!, [...(section.get(kv[1]!) ?? []), kv[2]!])
  })
  return unit
}

const unit = parseUnit(text)
const service = unit.get("Service") ?? new Map<string, Array<string>>()
const one = (key: string): string | undefined => service.get(key)?.at(-1)
const words = (key: string): Array<string> => (service.get(key) ?? []).flatMap((v) => v.split(/\s+/)).filter(Boolean)

describe("contrib/kiwitun@.service", () => {
  it("has the three sections", () => {
    expect([...unit.keys()]).toEqual(["Unit", "Service", "Install"])
  })

  it("runs kiwitun in the foreground as a notify service, with the instance's arguments", () => {
    expect(one("Type")).toBe("notify")
    expect(one("EnvironmentFile")).toBe("/etc/kiwitun/%i.conf")
    const exec = (one("ExecStart") ?? "").split(/\s+/)
    expect(exec[0]).toBe("/usr/local/bin/kiwitun")
    expect(exec).toContain("-d")
    expect(exec.at(-1)).toBe("$KIWITUN_ARGS") // unquoted: systemd splits it into words
    expect(one("ExecReload")).toMatch(/kill -HUP \$MAINPID$/)
  })

  it("puts the control socket in the runtime directory the service owns", () => {
    const exec = (one("ExecStart") ?? "").split(/\s+/)
    const socket = exec[exec.indexOf("--control-socket") + 1] ?? ""
    const runtime = one("RuntimeDirectory") ?? ""
    expect(runtime).toMatch(/^kiwitun(\/%i)?$/)
    expect(Path.dirname(socket)).toBe(Path.join("/run", runtime))
  })

  it("runs as a dedicated unprivileged user with exactly CAP_NET_ADMIN and CAP_NET_RAW", () => {
    const dedicated = one("DynamicUser") === "yes" || (one("User") !== undefined && one("User") !== "root")
    expect(dedicated).toBe(true)
    expect(words("AmbientCapabilities").sort()).toEqual(["CAP_NET_ADMIN", "CAP_NET_RAW"])
    expect(words("CapabilityBoundingSet").sort()).toEqual(["CAP_NET_ADMIN", "CAP_NET_RAW"])
    expect(one("NoNewPrivileges")).toBe("yes")
  })

  it("is hardened in ways the daemon survives", () => {
    expect(one("ProtectSystem")).toBe("strict")
    expect(one("ProtectHome")).toMatch(/^(yes|read-only|tmpfs)$/)
    expect(one("PrivateTmp")).toBe("yes")
    expect(words("RestrictAddressFamilies").sort()).toEqual(["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"])
    expect(one("DevicePolicy")).toBe("closed")
    expect(service.get("DeviceAllow")).toEqual(["/dev/net/tun rw"])
    // These would break it: no /dev/net/tun, capabilities only inside a user namespace, no JIT for Node.
    expect(one("PrivateDevices")).not.toBe("yes")
    expect(one("PrivateUsers")).not.toBe("yes")
    expect(one("PrivateNetwork")).not.toBe("yes")
    expect(one("MemoryDenyWriteExecute")).not.toBe("yes")
    // A filtered system call must fail, not kill the process.
    if (one("SystemCallFilter") !== undefined) expect(one("SystemCallErrorNumber")).toBe("EPERM")
  })

  const analyze = spawnSync("systemd-analyze", ["--version"], { stdio: "ignore" }).status === 0
  it.runIf(analyze || ci)("passes systemd-analyze verify without a warning", () => {
    expect(analyze, "systemd-analyze is not installed (CI=true requires it)").toBe(true)
    // verify checks that ExecStart's program exists: point it at this checkout's executable.
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "kiwitun-unit-"))
    try {
      const template = Path.join(dir, "kiwitun@.service")
      Fs.writeFileSync(template, text.replaceAll("/usr/local/bin/kiwitun", Path.join(root, "bin", "kiwitun")))
      Fs.symlinkSync("kiwitun@.service", Path.join(dir, "kiwitun@ci.service"))
      const r = spawnSync("systemd-analyze", ["verify", "--man=no", Path.join(dir, "kiwitun@ci.service")], {
        encoding: "utf8",
        timeout: 30_000
      })
      expect(r.status, r.stderr).toBe(0)
      expect(`${r.stdout}${r.stderr}`.trim(), "warnings").toBe("")
    } finally {
      Fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 40_000)

  it("passes only switches the daemon knows", () => {
    const help = execFileSync(Path.join(root, "bin", "kiwitun"), ["--help"], { encoding: "utf8" })
    const exec = (one("ExecStart") ?? "").split(/\s+/).filter((w) => w.startsWith("-"))
    for (const flag of exec) expect(help, flag).toContain(flag)
  })
})
