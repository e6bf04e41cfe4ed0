// A stock js-libp2p client, for the interop test (tests/node/net/test_js_interop.py).
//
// It joins an arnode swarm the way any libp2p node would: TCP, the standard private network
// (@libp2p/pnet: XSalsa20, keyed by a /key/swarm/psk/1.0.0/ file), Noise, Yamux, identify and
// GossipSub. Driven by JSON lines: commands on stdin, one reply line each on stdout; what it sees
// on its own (ready, each record received) comes as event lines.
//
//   node client.mjs --key-file FILE --seed HEX --topic TOPIC (--peer MULTIADDR | --listen)
//
// With --peer it dials the node; with --listen it listens on 127.0.0.1, says where, and waits for
// the node to dial it.
//
// Commands:
//   {"cmd": "wait_mesh"}                     until the peer is subscribed to the topic with us
//   {"cmd": "publish", "hex": "..."}         publish these bytes on the topic
//   {"cmd": "sync_garbage", "hex": "..."}    open the arnode sync protocol, send these bytes, say how it ended
//   {"cmd": "stop"}

import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { gossipsub } from '@chainsafe/libp2p-gossipsub'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'

const SYNC_PROTOCOL = '/arnode/sync/1'
const DIAL_TIMEOUT_MS = 20_000
const WAIT_MESH_MS = 20_000
const STREAM_ANSWER_MS = 10_000

const { values: args } = parseArgs({
  options: {
    'key-file': { type: 'string' },
    seed: { type: 'string' },
    peer: { type: 'string' },
    listen: { type: 'boolean', default: false },
    topic: { type: 'string' }
  }
})

function emit (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

function sleep (ms) {
  return new Promise(resolve => setTimeout(resolve, ms))
}

// Node 20 lacks Promise.withResolvers (ES2024), which a dependency of js-libp2p calls: its standard definition.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new Promise((resolve_, reject_) => { resolve = resolve_; reject = reject_ })
  return { promise, resolve, reject }
}

const node = await createLibp2p({
  privateKey: await generateKeyPairFromSeed('Ed25519', Buffer.from(args.seed, 'hex')),
  addresses: { listen: args.listen ? ['/ip4/127.0.0.1/tcp/0'] : [] },
  transports: [tcp()],
  connectionProtector: preSharedKey({ psk: readFileSync(args['key-file']) }),
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: {
    identify: identify(),
    pubsub: gossipsub({ allowPublishToZeroTopicPeers: true })
  }
})
const pubsub = node.services.pubsub
pubsub.addEventListener('message', (event) => {
  if (event.detail.topic === args.topic) {
    emit({ event: 'record', id: createHash('sha256').update(event.detail.data).digest('hex') })
  }
})
pubsub.subscribe(args.topic)
const connection = args.listen
  ? await dialledByTheNode()
  : await node.dial(multiaddr(args.peer), { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
const remote = connection.remotePeer
emit({
  event: 'ready',
  peer_id: node.peerId.toString(),
  remote: remote.toString(),
  encryption: connection.encryption,
  multiplexer: connection.multiplexer
})

async function dialledByTheNode () {
  const opened = new Promise(resolve => {
    node.addEventListener('connection:open', event => resolve(event.detail), { once: true })
  })
  emit({ event: 'listening', addrs: node.getMultiaddrs().map(String) })
  return opened
}

async function waitMesh () {
  const deadline = Date.now() + WAIT_MESH_MS
  while (Date.now() < deadline) {
    if (pubsub.getSubscribers(args.topic).some(peer => peer.equals(remote))) {
      const streams = node.getConnections(remote).flatMap(conn => conn.streams.map(stream => stream.protocol)).filter(Boolean)
      return { subscribed: true, protocols: [...new Set(streams)].sort() }
    }
    await sleep(50)
  }
  return { subscribed: false }
}

async function publish (hex) {
  const result = await pubsub.publish(args.topic, Buffer.from(hex, 'hex'))
  return { recipients: result.recipients.length }
}

// Send bytes on the sync protocol, read whatever comes back, and tell how the stream ended.
async function syncGarbage (hex) {
  const stream = await node.dialProtocol(remote, SYNC_PROTOCOL, { signal: AbortSignal.timeout(DIAL_TIMEOUT_MS) })
  const timer = setTimeout(() => stream.abort(new Error('no end within the wait')), STREAM_ANSWER_MS)
  let answered = 0
  let ended = 'closed'
  try {
    await stream.sink([Buffer.from(hex, 'hex')]) // then our writing end closes, as a finished request does
    for await (const chunk of stream.source) {
      answered += chunk.byteLength
    }
  } catch (err) {
    ended = err.name === 'StreamResetError' ? 'reset' : `${err.name}: ${err.message}`
  } finally {
    clearTimeout(timer)
  }
  return { ended, status: stream.status, answered_bytes: answered }
}

const commands = {
  wait_mesh: () => waitMesh(),
  publish: (command) => publish(command.hex),
  sync_garbage: (command) => syncGarbage(command.hex)
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line)
  if (command.cmd === 'stop') {
    break
  }
  try {
    const handler = commands[command.cmd]
    emit(handler ? await handler(command) : { error: `unknown command ${command.cmd}` })
  } catch (err) {
    emit({ error: `${err.name}: ${err.message}` })
  }
}
await node.stop()
emit({ event: 'stopped' })
process.exit(0)
