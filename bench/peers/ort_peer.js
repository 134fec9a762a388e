#!/usr/bin/env node
// The ONNX Runtime peer of `kiln bench --compare ort`: a persistent process that speaks JSON
// lines on stdin/stdout (one request, one reply; the same protocol as torch_peer.py, see
// tools/peers.h):
//
//   (on start)                                        -> {"ok":true,"peer":"ort","version":…}
//   {"cmd":"load","model":"m.onnx","input":"x.npy","threads":2}
//                                                     -> {"ok":true,"load_ms":…}
//   {"cmd":"run","iters":10}                          -> {"ok":true,"ms":[…]}
//   {"cmd":"rss"}                                     -> {"ok":true,"peak_bytes":…,"rss_bytes":…}
//   {"cmd":"output","input":"x.npy"}                  -> {"ok":true,"shape":[…],"data":[…]}
//   {"cmd":"quit"}                                    -> {"ok":true}, then exit
// Failures answer {"ok":false,"error":"…"} and the process keeps serving; end of input exits.
//
// The session: CPU execution provider, `threads` intra-op threads, one inter-op thread,
// sequential execution, graph optimization level "all". "run" times each session.run on the
// load input here, so no pipe time is counted. Install with scripts/setup-bench.sh (npm ci).
'use strict';

const fs = require('fs');
const readline = require('readline');

function reply(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let ort;
try {
  ort = require('onnxruntime-node');
} catch (e) {
  reply({ok: false, error: `cannot load onnxruntime-node (${e.message.split('\n')[0]})`});
  process.exit(1);
}

function readStatus(field) {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  const m = text.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
  return m ? Number(m[1]) * 1024 : 0;
}

// A little-endian float32 C-order .npy (format 1.x/2.x/3.x), as numpy and kiln write them.
function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== '\x93NUMPY') {
    throw new Error(`${path}: not a .npy file`);
  }
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']*)'/.exec(header);
  const fortran = /'fortran_order':\s*(True|False)/.exec(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header);
  if (!descr || !fortran || !shapeText) throw new Error(`${path}: bad .npy header ${header}`);
  if (descr[1] !== '<f4') throw new Error(`${path}: expected float32 ('<f4'), got '${descr[1]}'`);
  if (fortran[1] !== 'False') throw new Error(`${path}: Fortran order is not supported`);
  const shape = shapeText[1].split(',').map((s) => s.trim()).filter((s) => s).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = start + headerLen;
  if (buf.length < offset + 4 * count) throw new Error(`${path}: truncated data`);
  const data = new Float32Array(count);
  for (let i = 0; i < count; ++i) data[i] = buf.readFloatLE(offset + 4 * i);
  return new ort.Tensor('float32', data, shape);
}

const state = {session: null, input: null};

function feeds(x) {
  return {[state.session.inputNames[0]]: x};
}

async function forward(x) {
  if (!state.session) throw new Error('no model: send load first');
  const out = await state.session.run(feeds(x));
  return out[state.session.outputNames[0]];
}

const handlers = {
  async load(req) {
    const threads = Number(req.threads ?? 1);
    if (!(threads >= 1)) throw new Error('threads must be >= 1');
    if (req.model === undefined) throw new Error('missing field \'model\'');
    if (req.input === undefined) throw new Error('missing field \'input\'');
    const start = performance.now();
    const session = await ort.InferenceSession.create(req.model, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
    const loadMs = performance.now() - start;
    state.session = session;
    state.input = readNpy(req.input);
    return {load_ms: loadMs, threads};
  },
  async run(req) {
    const iters = Number(req.iters ?? 1);
    if (!(iters >= 1)) throw new Error('iters must be >= 1');
    if (!state.session) throw new Error('no model: send load first');
    const ms = [];
    for (let i = 0; i < iters; ++i) {
      const start = performance.now();
      await forward(state.input);
      ms.push(performance.now() - start);
    }
    return {ms};
  },
  async output(req) {
    const x = req.input !== undefined ? readNpy(req.input) : state.input;
    const y = await forward(x);
    return {shape: y.dims.map(Number), data: Array.from(y.data)};
  },
  async rss() {
    return {peak_bytes: readStatus('VmHWM'), rss_bytes: readStatus('VmRSS')};
  },
};

async function main() {
  reply({ok: true, peer: 'ort', version: ort.env.versions.node ?? ort.env.versions.common,
         pid: process.pid});
  const rl = readline.createInterface({input: process.stdin, terminal: false});
  for await (const raw of rl) {
    const line = raw.trim();
    if (!line) continue;
    let req;
    try {
      req = JSON.parse(line);
    } catch (e) {
      reply({ok: false, error: `bad JSON: ${e.message}`});
      continue;
    }
    const cmd = req !== null && typeof req === 'object' ? req.cmd : undefined;
    if (cmd === 'quit') {
      reply({ok: true});
      process.exit(0);
    }
    if (!Object.prototype.hasOwnProperty.call(handlers, cmd)) {
      reply({ok: false, error: `unknown cmd ${JSON.stringify(cmd)} (known: quit, ` +
                               `${Object.keys(handlers).join(', ')})`});
      continue;
    }
    try {
      reply({ok: true, ...(await handlers[cmd](req))});
    } catch (e) {
      reply({ok: false, error: `${cmd}: ${e.message}`});
    }
  }
  process.exit(0);
}

main();
