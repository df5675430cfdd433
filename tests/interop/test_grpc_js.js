// Interop: the echo test server, the registry, the trainer and the predictor against
// @grpc/grpc-js (Node's pure-JS gRPC client, a different HTTP/2 stack from the C core): the four
// call shapes, health, unknown methods, deadlines, a graceful stop with the client connection
// still open, the trainer's Train stream refusing an empty request, and the predictor with no
// model (NOT_SERVING, Predict UNAVAILABLE, GetModelInfo saying so).
//
// Run: node tests/interop/test_grpc_js.js [BUILD_DIR]   (or CREDITO_BUILD_DIR; default
// /work/main/build). The modules come from tests/peers/node_modules (cd tests/peers && npm ci).
'use strict';

const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { spawn } = require('node:child_process');
const { test, after } = require('node:test');
const assert = require('node:assert/strict');

const SRC = path.resolve(__dirname, '..', '..');
const PEERS = path.join(SRC, 'tests', 'peers', 'node_modules');
let grpc;
let protoLoader;
try {
  grpc = require(path.join(PEERS, '@grpc', 'grpc-js'));
  protoLoader = require(path.join(PEERS, '@grpc', 'proto-loader'));
} catch (e) {
  console.error(`FAIL: @grpc/grpc-js or @grpc/proto-loader missing under ${PEERS} ` +
    `(cd tests/peers && npm ci): ${e.message}`);
  process.exit(1);
}

const BUILD = process.argv[2] || process.env.CREDITO_BUILD_DIR ||
  path.join(__dirname, '..', '..', 'build');
const BIN = {
  echo: path.join(BUILD, 'tests/integration/credito-echo-server'),
  registry: path.join(BUILD, 'services/registry/credito-registry'),
  trainer: path.join(BUILD, 'services/trainer/credito-trainer'),
  predictor: path.join(BUILD, 'services/predictor/credito-predictor'),
};
const GRPC_PROTO = '/usr/share/grpc-proto';
const S = grpc.status;

const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch (e) { /* already gone */ }
  }
});

// Starts a server on a free port; resolves {proc, port, stderr(), exited} once it logged
// "listening" and then that it is serving (each stderr line parsed as JSON), or once it logged
// "listening" when waitServing is false (a predictor with no model never serves).
function startServer(bin, args = [], { waitServing = true } = {}) {
  if (!fs.existsSync(bin)) throw new Error(`${bin} not built (pass the build dir)`);
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ['--listen', '127.0.0.1:0', ...args],
      { stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(proc);
    let buf = '';
    let port = null;
    let serving = !waitServing;
    const lines = [];
    const exited = new Promise((res) => proc.on('exit', (code, sig) => {
      live.delete(proc);
      res({ code, sig });
    }));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${bin}: not listening and serving within 10 s:\n${lines.join('\n')}`));
    }, 10000);
    proc.stderr.on('data', (chunk) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        let rec = null;
        try { rec = JSON.parse(line); } catch (e) { /* not JSON */ }
        if (rec && rec.msg === 'listening') port = rec.port;
        if (rec && rec.msg === 'health' && rec.service === '' && rec.serving === true) {
          serving = true;
        }
        if (port !== null && serving) {
          clearTimeout(timer);
          resolve({ proc, port, stderr: () => lines.join('\n'), exited });
        }
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${bin} exited ${code}:\n${lines.join('\n')}`));
    });
  });
}

const loadOpts = { keepCase: false, longs: String, enums: String, bytes: Buffer, defaults: true };
const echoPkg = grpc.loadPackageDefinition(protoLoader.loadSync('credito/test/v1/echo.proto',
  { ...loadOpts, includeDirs: [path.join(SRC, 'tests', 'proto')] }));
const healthPkg = grpc.loadPackageDefinition(protoLoader.loadSync('grpc/health/v1/health.proto',
  { ...loadOpts, includeDirs: [GRPC_PROTO] }));
const predictorPkg = grpc.loadPackageDefinition(protoLoader.loadSync('credito/v1/predictor.proto',
  { ...loadOpts, includeDirs: [path.join(SRC, 'proto')] }));

const deadline = (ms) => new Date(Date.now() + ms);
const call = (client, method, req, ms = 5000) => new Promise((resolve, reject) => {
  client[method](req, { deadline: deadline(ms) },
    (err, resp) => (err ? reject(err) : resolve(resp)));
});

let echoSrv;
let echoClient;
let healthClient;

after(async () => {
  if (echoClient) echoClient.close();
  if (healthClient) healthClient.close();
  if (echoSrv && echoSrv.proc.exitCode === null) echoSrv.proc.kill('SIGKILL');
});

test('echo server over grpc-js', async (t) => {
  echoSrv = await startServer(BIN.echo, ['--workers', '4']);
  const target = `127.0.0.1:${echoSrv.port}`;
  echoClient = new echoPkg.credito.test.v1.Echo(target, grpc.credentials.createInsecure());
  healthClient = new healthPkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());

  await t.test('Health/Check is SERVING', async () => {
    const r = await call(healthClient, 'Check', { service: '' });
    assert.equal(r.status, 'SERVING');
    await assert.rejects(call(healthClient, 'Check', { service: 'no.such.Service' }),
      (e) => e.code === S.NOT_FOUND);
  });

  await t.test('unary Echo', async () => {
    const r = await call(echoClient, 'Echo', { text: 'héllo', payload: Buffer.from([0, 1, 255]) });
    assert.equal(r.text, 'héllo');
    assert.deepEqual([...r.payload], [0, 1, 255]);
    assert.equal(r.seq, 1);
    assert.equal(r.serverPid, echoSrv.proc.pid);
  });

  await t.test('fail_code and deadline', async () => {
    await assert.rejects(call(echoClient, 'Echo', { failCode: 7 }),
      (e) => e.code === S.PERMISSION_DENIED && e.details === 'failed as asked');
    const t0 = Date.now();
    await assert.rejects(call(echoClient, 'Echo', { sleepMs: 2000 }, 200),
      (e) => e.code === S.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 1000);
  });

  await t.test('server stream Count', async () => {
    const got = await new Promise((resolve, reject) => {
      const out = [];
      const s = echoClient.Count({ n: 5 }, { deadline: deadline(5000) });
      s.on('data', (m) => out.push(m.seq));
      s.on('error', reject);
      s.on('end', () => resolve(out));
    });
    assert.deepEqual(got, [1, 2, 3, 4, 5]);
  });

  await t.test('client stream Sum', async () => {
    const r = await new Promise((resolve, reject) => {
      const s = echoClient.Sum({ deadline: deadline(5000) },
        (err, resp) => (err ? reject(err) : resolve(resp)));
      for (let i = 0; i < 3; i++) s.write({ payload: Buffer.alloc(10) });
      s.end();
    });
    assert.equal(r.count, 3);
    assert.equal(r.bytes, '30');
  });

  await t.test('bidi Chat ping-pong', async () => {
    const s = echoClient.Chat({ deadline: deadline(5000) });
    const texts = ['one', 'two', 'three'];
    const got = [];
    await new Promise((resolve, reject) => {
      let i = 0;
      s.on('data', (m) => {
        got.push(m.text);
        i++;
        if (i < texts.length) s.write({ text: texts[i] }); else s.end();
      });
      s.on('error', reject);
      s.on('end', resolve);
      s.write({ text: texts[0] });
    });
    assert.deepEqual(got, texts);
  });

  await t.test('unknown method is UNIMPLEMENTED', async () => {
    const c = new grpc.Client(target, grpc.credentials.createInsecure());
    await assert.rejects(new Promise((resolve, reject) => {
      c.makeUnaryRequest('/no.Such/Thing', (x) => x, (x) => x, Buffer.alloc(0),
        { deadline: deadline(5000) }, (err, r) => (err ? reject(err) : resolve(r)));
    }), (e) => e.code === S.UNIMPLEMENTED);
    c.close();
  });

  await t.test('SIGTERM with an in-flight call and an open connection', async () => {
    const inflight = call(echoClient, 'Echo', { text: 'in flight', sleepMs: 800 }, 10000);
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    echoSrv.proc.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.text, 'in flight');
    const { code, sig } = await echoSrv.exited;
    assert.equal(sig, null, `killed by ${sig}\n${echoSrv.stderr()}`);
    assert.equal(code, 0, echoSrv.stderr());
    assert.ok(Date.now() - t0 < 4000, `exit took ${Date.now() - t0} ms`);
  });
});

test('registry over grpc-js: an unknown run is NOT_FOUND, naming it', async () => {
  const store = fs.mkdtempSync(path.join(os.tmpdir(), 'credito-store-'));
  const srv = await startServer(BIN.registry, ['--store', `file://${store}`]);
  const c = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
  try {
    await assert.rejects(new Promise((resolve, reject) => {
      // GetRunRequest{run_id: "abc"}, encoded by hand.
      c.makeUnaryRequest('/credito.v1.Registry/GetRun', (x) => x, (x) => x,
        Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63]),
        { deadline: deadline(5000) }, (err, r) => (err ? reject(err) : resolve(r)));
    }), (e) => e.code === S.NOT_FOUND && /unknown run 'abc'/.test(e.details));
  } finally {
    c.close();
    srv.proc.kill('SIGTERM');
    const { code } = await srv.exited;
    assert.equal(code, 0, srv.stderr());
    fs.rmSync(store, { recursive: true, force: true });
  }
});

test('trainer over grpc-js: an empty Train is INVALID_ARGUMENT, naming the required fields',
  async () => {
    // The registry is a port nobody listens on: an empty request is refused before any call.
    const srv = await startServer(BIN.trainer, ['--registry', '127.0.0.1:1']);
    const c = new grpc.Client(`127.0.0.1:${srv.port}`, grpc.credentials.createInsecure());
    try {
      const events = [];
      await assert.rejects(new Promise((resolve, reject) => {
        const s = c.makeServerStreamRequest('/credito.v1.Trainer/Train', (x) => x, (x) => x,
          Buffer.alloc(0), { deadline: deadline(5000) });
        s.on('data', (m) => events.push(m));
        s.on('error', reject);
        s.on('status', (st) => { if (st.code === S.OK) resolve(); });
      }), (e) => e.code === S.INVALID_ARGUMENT &&
        /model_name and dataset\.name are required/.test(e.details));
      assert.equal(events.length, 0, 'no event before the error');
    } finally {
      c.close();
      srv.proc.kill('SIGTERM');
      const { code } = await srv.exited;
      assert.equal(code, 0, srv.stderr());
    }
  });

test('predictor over grpc-js without a model: NOT_SERVING, UNAVAILABLE, GetModelInfo says so',
  async () => {
    // No registry to reach (a port nobody listens on) and no cache: no model to serve.
    const srv = await startServer(BIN.predictor, ['--registry', '127.0.0.1:1', '--cache-dir',
      'off', '--model', 'credit-default@champion'], { waitServing: false });
    const target = `127.0.0.1:${srv.port}`;
    const pred = new predictorPkg.credito.v1.Predictor(target, grpc.credentials.createInsecure());
    const health = new healthPkg.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
    const raw = new grpc.Client(target, grpc.credentials.createInsecure());
    try {
      for (const service of ['', 'credito.v1.Predictor']) {
        const r = await call(health, 'Check', { service });
        assert.equal(r.status, 'NOT_SERVING', `health of '${service}'`);
      }
      await assert.rejects(call(pred, 'Predict', {
        features: [{ name: 'duration', value: { number: 6 } }], requestId: 'r1',
      }), (e) => e.code === S.UNAVAILABLE && /no verified model/.test(e.details));
      await assert.rejects(call(pred, 'PredictBatch', { rows: [{}] }),
        (e) => e.code === S.UNAVAILABLE);
      await assert.rejects(new Promise((resolve, reject) => {
        raw.makeUnaryRequest('/credito.v1.Predictor/Predict', (x) => x, (x) => x,
          Buffer.from([0xff, 0xff, 0xff]), { deadline: deadline(5000) },
          (err, r) => (err ? reject(err) : resolve(r)));
      }), (e) => e.code === S.INVALID_ARGUMENT && /credito\.v1\.PredictRequest/.test(e.details));
      const info = await call(pred, 'GetModelInfo', {});
      assert.equal(info.modelRef, 'credit-default@champion');
      assert.equal(info.serving, false);
      assert.equal(info.version, '0');
      assert.equal(info.schema, null);
    } finally {
      pred.close();
      health.close();
      raw.close();
      srv.proc.kill('SIGTERM');
      const { code } = await srv.exited;
      assert.equal(code, 0, srv.stderr());
    }
  });
