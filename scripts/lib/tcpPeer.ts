/**
 * One end of a TCP transfer used by the integration tests and benchmarks, run inside a namespace:
 *
 *   node tcpPeer.js sink <listen-address> <port>
 *     prints "listening", accepts one connection, reads it to the end, prints {"bytes","sha256"} and exits.
 *   node tcpPeer.js source <host> <port> <bytes>
 *     connects, sends <bytes> random bytes, waits for the sink to close, prints {"bytes","sha256"} and exits.
 *
 * Both ends hash what actually crossed their socket, so comparing the two reports checks the content end to end.
 * Plain Node on purpose: it is a tiny process of its own, started and stopped by the harness.
 */
import { createHash, randomFillSync } from "node:crypto"
import * as Net from "node:net"

const CHUNK = 64 * 1024

const fail = (message: string): void => {
  console.error(`tcpPeer: ${message}`)
  process.exitCode = 1
}

const report = (bytes: number, sha256: string): void => {
  console.log(JSON.stringify({ bytes, sha256 }))
}

const sink = (address: string, port: number): void => {
  const server = Net.createServer({ allowHalfOpen: true }, (socket) => {
    server.close() // one connection only
    const hash = createHash("sha256")
    let bytes = 0
    socket.on("data", (data: Buffer) => {
      bytes += data.length
      hash.update(data)
    })
    socket.on("end", () => {
      report(bytes, hash.digest("hex"))
      socket.end() // our FIN tells the source that everything arrived
    })
    socket.on("error", (e) => fail(`sink socket: ${e.message}`))
  })
  server.on("error", (e) => fail(`listen: ${e.message}`))
  server.listen({ host: address, port, ipv6Only: address.includes(":") }, () => console.log("listening"))
}

const source = (host: string, port: number, total: number): void => {
  const hash = createHash("sha256")
  let sent = 0
  const socket = Net.connect({ host, port, allowHalfOpen: true })
  const pump = (): void => {
    while (sent < total) {
      const size = Math.min(CHUNK, total - sent)
      // A fresh buffer per write: the socket may still hold the previous one.
      const chunk = randomFillSync(Buffer.allocUnsafe(size))
      hash.update(chunk)
      sent += size
      if (!socket.write(chunk)) {
        socket.once("drain", pump)
        return
      }
    }
    socket.end()
  }
  socket.on("connect", pump)
  socket.on("data", () => undefined)
  socket.on("end", () => {
    report(sent, hash.digest("hex"))
    socket.destroy()
  })
  socket.on("error", (e) => fail(`source socket: ${e.message}`))
}

const [mode, address, portText, bytesText] = process.argv.slice(2)
const port = Number(portText)
if (address === undefined || !Number.isInteger(port) || port <= 0 || port > 65535) {
  fail("usage: tcpPeer.js sink <address> <port> | source <host> <port> <bytes>")
} else if (mode === "sink") {
  sink(address, port)
} else if (mode === "source" && Number.isInteger(Number(bytesText)) && Number(bytesText) >= 0) {
  source(address, port, Number(bytesText))
} else {
  fail(`bad arguments: ${process.argv.slice(2).join(" ")}`)
}
