/**
 * The Live layers against the real kernel. Nothing here touches the root network namespace: the layers run in
 * small Node scripts (test/layers/fixtures) started with `ip netns exec` inside namespaces this file creates and
 * always deletes. The scripts import the layers compiled by `tsc` into a private directory under dist/.
 *
 * Runs as root with /dev/net/tun; elsewhere it is skipped, except with CI=true, where a missing prerequisite fails.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import path from "node:path"
import { ci, fixtures, ip, lastJson, liveBuild, missingPrerequisites, run } from "../support/live.js"

const live = liveBuild("live-test", ["TunDeviceLive", "RawSocketsLive", "HostAddressesLive"], ["layers/Ffi"])
const compiled = live.compiled
const fixtureIn = live.fixtureIn
const NS_A = `kwt-live-${process.pid}`
const NS_B = `kwt-live-${process.pid}-b`
const missing = missingPrerequisites()

const cleanup = () => {
  for (const ns of [NS_A, NS_B]) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore", timeout: 10_000 })
  live.remove()
}

interface Snapshot {
  readonly tun4: number
  readonly tun6: Array<number> | null
  readonly local4: Array<number>
}
interface Failure {
  readonly tag: string
  readonly op: string
  readonly errno: number
  readonly message: string
}
/** What tun.mjs reports. */
interface TunReport {
  readonly exit: string | Failure
  readonly missingCapabilities: Array<string>
  readonly service: { readonly name: string; readonly ifindex: number; readonly mtu: number }
  readonly link: { readonly ifname: string; readonly ifindex: number; readonly mtu: number; readonly txqlen: number
    readonly flags: Array<string> }
  readonly addresses: Array<string>
  readonly read: {
    readonly seen: Array<{ readonly version: number; readonly length: number; readonly headroom: number }>
    readonly found: { readonly src: string; readonly dst: string; readonly payload: string } | null
  }
  readonly write: { readonly written: number; readonly failed: number; readonly lastErrno: number }
  readonly delivered: { readonly payload: string; readonly from: string } | null
  readonly hostInitial: Snapshot
  readonly hostAfterAdd: Snapshot
  readonly hostAfterDel: Snapshot
  readonly duplicateName: Failure | string
  readonly kernelName: string
  readonly goneAfterClose: boolean
  readonly addressRefused: Failure | string
  readonly refusedGone: boolean
}
/** What raw-recv.mjs reports. */
interface ReceiveReport {
  readonly proto: number
  readonly truncated: number
  readonly packets: Array<{ readonly tag: string; readonly length: number; readonly proto: number
    readonly src: string; readonly dst: string }>
}

const u32 = (text: string) => text.split(".").reduce((n, p) => n * 256 + Number(p), 0)

describe.skipIf(missing.length > 0 && !ci)("Live layers in network namespaces", () => {
  beforeAll(() => {
    if (missing.length > 0) throw new Error(`missing prerequisites: ${missing.join(", ")}`)
    try {
      live.compile()
      ip("netns", "add", NS_A)
      ip("netns", "add", NS_B)
      ip("-n", NS_A, "link", "set", "lo", "up")
      ip("-n", NS_B, "link", "set", "lo", "up")
      // veth between the two namespaces, created from inside NS_A
      ip("-n", NS_A, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", NS_B)
      ip("-n", NS_A, "addr", "add", "192.0.2.1/24", "dev", "va")
      ip("-n", NS_B, "addr", "add", "192.0.2.2/24", "dev", "vb")
      // a lowered MTU on the sender's side, for EMSGSIZE
      ip("-n", NS_A, "link", "set", "va", "mtu", "1000", "up")
      ip("-n", NS_B, "link", "set", "vb", "up")
    } catch (e) {
      cleanup()
      throw e
    }
  }, 240_000)

  afterAll(() => cleanup(), 60_000)

  it("reports no missing capability as root, and names what a process lacks", () => {
    const script = `const F = await import(${JSON.stringify(path.join(compiled, "src/layers/Ffi.js"))}); ` +
      "process.stdout.write(JSON.stringify(F.missingCapabilities()))"
    const node = [process.execPath, "--input-type=module", "-e", script]
    expect(JSON.parse(run(node[0]!, node.slice(1)))).toEqual([])
    const dropped = run("setpriv", ["--bounding-set=-net_admin,-net_raw", "--inh-caps=-net_admin,-net_raw", ...node])
    expect(JSON.parse(dropped)).toEqual(["CAP_NET_ADMIN", "CAP_NET_RAW"])
    const rawOnly = run("setpriv", ["--bounding-set=-net_raw", "--inh-caps=-net_raw", ...node])
    expect(JSON.parse(rawOnly)).toEqual(["CAP_NET_RAW"])
  }, 30_000)

  it("creates, configures, reads, writes and removes a TUN device; follows addresses", () => {
    const r = fixtureIn(NS_A, "tun.mjs", []) as TunReport
    expect(r.exit).toBe("success")
    expect(r.missingCapabilities).toEqual([])
    expect(r.service).toEqual({ name: "kwt0", ifindex: r.link.ifindex, mtu: 1400 })
    expect(r.link).toMatchObject({ ifname: "kwt0", mtu: 1400, txqlen: 2000 })
    expect(r.link.flags).toContain("UP")
    expect(r.addresses).toEqual(expect.arrayContaining(["198.51.100.1/24", "2001:db8:1::1/64"]))

    // a datagram the kernel routed into the device was read, as a view after its headroom
    expect(r.read.found).toEqual({ src: "198.51.100.1", dst: "198.51.100.2", payload: "hello" })
    for (const p of r.read.seen) {
      expect(p.headroom).toBeGreaterThanOrEqual(20)
      expect((p.headroom - 20) % 64).toBe(0)
    }
    // a bad packet is counted, not fatal; the good one reached a socket in the namespace
    expect(r.write).toEqual({ written: 1, failed: 1, lastErrno: 22 })
    expect(r.delivered).toEqual({ payload: "world", from: "198.51.100.2:4000" })

    const tun6 = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    expect(r.hostInitial.tun4).toBe(u32("198.51.100.1"))
    expect(r.hostInitial.tun6).toEqual(tun6)
    expect(r.hostInitial.local4).toEqual(expect.arrayContaining([u32("127.0.0.1"), u32("198.51.100.1")]))
    expect(r.hostInitial.local4).not.toContain(u32("203.0.113.9"))
    expect(r.hostAfterAdd.local4).toContain(u32("203.0.113.9"))
    expect(r.hostAfterDel.local4).not.toContain(u32("203.0.113.9"))
    expect(r.hostAfterDel.tun4).toBe(u32("198.51.100.1"))

    expect(r.duplicateName).toMatchObject({ tag: "TunError", op: "open", errno: 16 })
    expect(r.kernelName).toMatch(/^tun\d+$/)
    expect(r.goneAfterClose).toBe(true)
    expect(r.addressRefused).toMatchObject({ tag: "TunError", op: "configure", errno: 17 })
    expect(JSON.stringify(r.addressRefused)).toContain("198.51.100.1/24")
    expect(r.refusedGone).toBe(true)
  }, 90_000)

  it("sends and receives protocol-4 packets across a veth, and reports EMSGSIZE with the MTU", async () => {
    const receiver = spawn(
      "ip",
      ["netns", "exec", NS_B, process.execPath, path.join(fixtures, "raw-recv.mjs"), compiled, "5"],
      { stdio: ["ignore", "pipe", "pipe"] }
    )
    let stdout = ""
    let stderr = ""
    receiver.stdout.on("data", (d) => (stdout += String(d)))
    receiver.stderr.on("data", (d) => (stderr += String(d)))
    const exited = new Promise<number | null>((resolve) => receiver.on("exit", (code) => resolve(code)))
    try {
      for (let i = 0; i < 300 && !stdout.includes("ready\n"); i++) await new Promise((r) => setTimeout(r, 50))
      expect(stdout).toContain("ready\n")

      const sent = fixtureIn(NS_A, "raw-send.mjs", ["192.0.2.1", "192.0.2.2"])
      expect(sent).toEqual({
        first: { sent: 3, failures: [] },
        mixed: {
          sent: 2,
          failures: [
            // 1400 bytes on a 1000-byte link: the kernel's EMSGSIZE, with the device MTU from the error queue
            { index: 1, errno: 90, mtu: 1000 },
            // shorter than an IPv4 header
            { index: 2, errno: 22, mtu: 0 }
          ]
        }
      })

      expect(await exited).toBe(0)
      const got = lastJson(stdout, stderr) as ReceiveReport
      expect(got.proto).toBe(4)
      expect(got.truncated).toBe(0)
      expect(got.packets.map((p) => [p.tag, p.length])).toEqual([
        ["first-1.", 200],
        ["first-2.", 60],
        ["first-3.", 900],
        ["mixed-0.", 300],
        ["mixed-3.", 64]
      ])
      for (const p of got.packets) expect(p).toMatchObject({ proto: 4, src: "192.0.2.1", dst: "192.0.2.2" })
    } finally {
      if (receiver.exitCode === null && receiver.pid !== undefined) receiver.kill()
    }
  }, 90_000)
})
