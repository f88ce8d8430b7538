// A Node.js client of zkernel's gRPC API, built at run time from the same .proto as the
// Python stubs (plugins/transport_grpc/proto/zkernel/v1/zkernel.proto) with
// @grpc/grpc-js and @grpc/proto-loader.
//
//   node client.js HOST:PORT PROTO_ROOT PATH_PREFIX
//
// Scenario: session A creates an ephemeral znode; session B watches it (Exists with a
// watch, on B's event stream, B kept alive by a KeepAlive stream); A stops calling and
// its lease runs out; B sees NODE_DELETED and the znode is gone. Also checks the error
// mapping (NOT_FOUND with zk-error-code -101). Prints one JSON line with what it saw;
// exits non-zero on any failure.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const [target, protoRoot, prefix] = process.argv.slice(2);
const def = protoLoader.loadSync('zkernel/v1/zkernel.proto', {
  includeDirs: [path.resolve(protoRoot)],
  keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
});
const v1 = grpc.loadPackageDefinition(def).zkernel.v1;
const creds = grpc.credentials.createInsecure();
const sessions = new v1.Sessions(target, creds);
const nodes = new v1.Nodes(target, creds);
const watches = new v1.Watches(target, creds);

function call(client, method, request, token) {
  const md = new grpc.Metadata();
  if (token) md.set('zk-session', token);
  return new Promise((resolve, reject) => {
    client[method](request, md, { deadline: Date.now() + 10000 }, (err, res) => {
      if (err) reject(err); else resolve(res);
    });
  });
}

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

async function main() {
  const timer = setTimeout(() => fail('timed out'), 20000);
  const a = await call(sessions, 'Create', { timeout_ms: 600 });
  const b = await call(sessions, 'Create', { timeout_ms: 5000 });
  const parent = `${prefix}`;
  const eph = `${prefix}/ephemeral`;
  await call(nodes, 'Create', { path: parent, mode: 'PERSISTENT' }, b.token);
  const created = await call(nodes, 'Create',
    { path: eph, data: Buffer.from('from node'), mode: 'EPHEMERAL' }, a.token);
  if (created.stat.ephemeral_owner !== a.session_id) fail('wrong ephemeral owner');

  // B: keep-alive stream, event stream, a watch on the ephemeral.
  const kmd = new grpc.Metadata();
  kmd.set('zk-session', b.token);
  const keepalive = sessions.KeepAlive(kmd);
  keepalive.on('data', () => {});
  keepalive.on('error', () => {});
  const pinger = setInterval(() => keepalive.write({}), 300);
  keepalive.write({});

  const emd = new grpc.Metadata();
  emd.set('zk-session', b.token);
  const events = watches.Events({ after_zxid: 0 }, emd);
  const seen = [];
  const deleted = new Promise((resolve) => {
    events.on('data', (msg) => {
      for (const e of msg.events) {
        seen.push({ type: e.type, path: e.path, zxid: e.zxid });
        if (e.type === 'NODE_DELETED' && e.path === eph) resolve(e);
      }
    });
    events.on('error', () => {});
  });
  const ex = await call(nodes, 'Exists', { path: eph, watch: true }, b.token);
  if (!ex.exists) fail('the ephemeral is not visible to session B');
  const got = await call(nodes, 'Get', { path: eph }, b.token);

  // A makes no more calls: its 600 ms lease expires and the ephemeral goes with it.
  const t0 = Date.now();
  const event = await deleted;
  const waitedMs = Date.now() - t0;
  const after = await call(nodes, 'Exists', { path: eph }, b.token);
  if (after.exists) fail('the ephemeral outlived its session');

  let notFound = null;
  try {
    await call(nodes, 'Get', { path: eph }, b.token);
  } catch (err) {
    notFound = { code: err.code, zk: err.metadata.get('zk-error-code')[0] };
  }
  let expired = null;
  try {
    await call(nodes, 'Get', { path: parent }, a.token);
  } catch (err) {
    expired = { code: err.code, zk: err.metadata.get('zk-error-code')[0] };
  }

  clearInterval(pinger);
  keepalive.end();
  events.cancel();
  await call(nodes, 'Delete', { path: parent }, b.token);
  await call(sessions, 'End', {}, b.token);
  clearTimeout(timer);
  console.log(JSON.stringify({
    session_a: a.session_id, data: got.data.toString(), event, waited_ms: waitedMs,
    exists_after: after.exists, not_found: notFound, expired, seen,
  }));
  // Exit rather than close the clients (open streams would keep Node running).
  process.exit(0);
}

main().catch((err) => fail(`error: ${err && err.stack ? err.stack : err}`));
