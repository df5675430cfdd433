#!/usr/bin/env node
// Launches the pinned @20minutes/s3rver 4.0.4 (tests/peers/node_modules) for the tests: its
// package ships no bin/ file, so this drives its library API. Prints one JSON line
// {"msg":"listening","port":N} on stderr when ready, the line tests/harness waits for.
//
//   node --openssl-legacy-provider tests/peers/s3rver.js --directory DIR [--port 0]
//     [--address 127.0.0.1] [--bucket credito]... [--access-key K --secret-key S] [--verbose]
//
// --openssl-legacy-provider is required: s3rver encrypts ListObjectsV2 continuation tokens with
// DES, which Node 20 on OpenSSL 3 only offers through the legacy provider; without it every
// paginated listing answers HTTP 500. This launcher checks and refuses to start without it.
// The fixed S3RVER/S3RVER key pair always works; --access-key/--secret-key add another pair to
// s3rver's dummy account (its account model allows any number).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const peers = path.join(__dirname, 'node_modules', '@20minutes', 's3rver');
const S3rver = require(peers);
const AWSAccount = require(path.join(peers, 'lib', 'models', 'account'));

function usage(msg) {
  process.stderr.write(
    JSON.stringify({ msg: 'usage error', error: msg }) +
      '\nusage: node --openssl-legacy-provider s3rver.js --directory DIR [--port N]' +
      ' [--address A] [--bucket B]... [--access-key K --secret-key S] [--verbose]\n',
  );
  process.exit(2);
}

function parseArgs(argv) {
  const o = { port: 0, address: '127.0.0.1', buckets: [], verbose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--port':
        o.port = Number(val());
        if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) usage('bad --port');
        break;
      case '--address':
        o.address = val();
        break;
      case '--directory':
        o.directory = val();
        break;
      case '--bucket':
        o.buckets.push(val());
        break;
      case '--access-key':
        o.accessKey = val();
        break;
      case '--secret-key':
        o.secretKey = val();
        break;
      case '--verbose':
        o.verbose = true;
        break;
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (!o.directory) usage('--directory is required');
  if (Boolean(o.accessKey) !== Boolean(o.secretKey)) {
    usage('--access-key and --secret-key go together');
  }
  return o;
}

function checkDes() {
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
  } catch (e) {
    process.stderr.write(
      JSON.stringify({
        msg: 'DES unavailable: run node with --openssl-legacy-provider',
        error: String(e.message),
      }) + '\n',
    );
    process.exit(2);
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  checkDes();
  fs.mkdirSync(o.directory, { recursive: true });
  if (o.accessKey) AWSAccount.DUMMY_ACCOUNT.createKeyPair(o.accessKey, o.secretKey);
  const server = new S3rver({
    port: o.port,
    address: o.address,
    directory: o.directory,
    silent: !o.verbose,
    vhostBuckets: false, // path-style only, as Credito sends
    configureBuckets: o.buckets.map((name) => ({ name, configs: [] })),
  });
  const addr = await server.run();
  process.stderr.write(
    JSON.stringify({ msg: 'listening', address: addr.address, port: addr.port }) + '\n',
  );
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  process.stderr.write(JSON.stringify({ msg: 'failed', error: String(e && e.stack) }) + '\n');
  process.exit(1);
});
