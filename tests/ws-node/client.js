#!/usr/bin/env node
// Drives punchd over WebSocket with the npm `ws` library (a real third-party client), for
// tests/integration/test_ws_node.py:
//
//   node client.js HOST PORT [TIMEOUT_MS]
//
// Two peers A and B connect to ws://HOST:PORT/ and announce; A pushes B; B relays an object to A,
// A relays a string to B; A pings (ws's own ping/pong); A sends an unknown action; B sends a
// message that is not JSON; A closes with 1000; B pushes A again. Prints one JSON object on stdout
// with everything each side received (the Python test checks it) and exits 0, or prints
// {"error": ...} and exits 1 (a timeout, an unexpected close, a connection error).
'use strict';

const WebSocket = require('ws');

const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 3000);
const timeoutMs = Number(process.argv[4] || 10000);
const url = `ws://${host.includes(':') ? `[${host}]` : host}:${port}/`;

const result = { url, a: {}, b: {} };

function fail(err) {
  process.stdout.write(JSON.stringify({ error: String(err && err.stack || err), partial: result }) + '\n');
  process.exit(1);
}

setTimeout(() => fail(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs).unref();

// A connected socket whose JSON messages can be awaited one by one.
function open(name) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const queue = [];
    const waiters = [];
    ws.on('message', (data, isBinary) => {
      let msg;
      try {
        msg = isBinary ? { binary: data.toString('hex') } : JSON.parse(data.toString('utf8'));
      } catch (e) {
        msg = { unparsable: data.toString('utf8') };
      }
      if (waiters.length) waiters.shift()(msg); else queue.push(msg);
    });
    ws.on('error', (e) => reject(new Error(`${name}: ${e.message}`)));
    ws.on('unexpected-response', (req, res) => reject(new Error(`${name}: HTTP ${res.statusCode}`)));
    ws.on('open', () => {
      ws.next = () => new Promise((res) => {
        if (queue.length) res(queue.shift()); else waiters.push(res);
      });
      ws.request = (obj) => {
        ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
        return ws.next();
      };
      resolve(ws);
    });
  });
}

async function main() {
  const a = await open('A');
  const b = await open('B');
  result.a.closeEvents = [];
  result.b.closeEvents = [];
  b.on('close', (code, reason) => result.b.closeEvents.push({ code, reason: reason.toString() }));

  result.a.announce = await a.request({ action: 'announce' });
  result.b.announce = await b.request({ action: 'announce' });
  const aId = result.a.announce.data.shareId;
  const bId = result.b.announce.data.shareId;

  // Both sides learn each other at the same moment.
  a.send(JSON.stringify({ action: 'push', shareId: bId }));
  [result.a.pushReply, result.b.income] = await Promise.all([a.next(), b.next()]);

  // Relay both ways: an object and a string with non-ASCII characters.
  const offer = { type: 'offer', sdp: 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n', n: [1, 2.5, null, true] };
  b.send(JSON.stringify({ action: 'relay', shareId: aId, data: offer }));
  result.a.relayed = await a.next();
  result.sentOffer = offer;
  const text = 'h\u00e9llo \u{1F389} candidate:1 1 UDP 2122260223 192.0.2.1 54400 typ host';
  a.send(JSON.stringify({ action: 'relay', shareId: bId, data: text }));
  result.b.relayed = await b.next();
  result.sentText = text;

  // ws's own ping: the server must answer with a pong carrying the same payload.
  result.a.pong = await new Promise((resolve) => {
    a.once('pong', (data) => resolve(data.toString('utf8')));
    a.ping(Buffer.from('node-ping'));
  });

  result.a.unknown = await a.request({ action: 'dance' });
  result.b.notJson = await b.request('this is not json');
  result.b.alive = await b.request({ action: 'alive' });

  // A leaves with a clean close handshake; it is gone at once.
  result.a.close = await new Promise((resolve) => {
    a.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    a.close(1000, 'bye');
  });
  result.b.pushAfterClose = await b.request({ action: 'push', shareId: aId });

  await new Promise((resolve) => {
    b.once('close', (code) => { result.b.finalClose = code; resolve(); });
    b.close(1000);
  });
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
}

main().catch(fail);
