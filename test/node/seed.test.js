// The seed's user-management walk (milvus-authenticate-user-access) with the
// Milvus Node SDK, through the real authproxy binary in front of the fake
// Milvus. `make test-node` builds both binaries into ../../bin first.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { MilvusClient } = require('@zilliz/milvus2-sdk-node');

const bin = path.resolve(__dirname, '..', '..', 'bin');
const procs = [];
let dir, proxyAddr, configPath;

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function start(cmd, args, logName) {
  const p = spawn(path.join(bin, cmd), args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = fs.createWriteStream(path.join(dir, logName));
  p.stdout.pipe(log);
  p.stderr.pipe(log);
  procs.push(p);
  return p;
}

async function waitPort(port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => { s.end(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} not listening after ${ms} ms`);
}

async function eventually(ms, fn) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function client(token) {
  const c = new MilvusClient({ address: proxyAddr, token, timeout: 10000, maxRetries: 0, logLevel: 'error' });
  // The SDK connects in the constructor; a refused token rejects this
  // promise, and every call awaits it: the calls carry the assertion.
  c.connectPromise.catch(() => {});
  return c;
}

// Milvus answers business errors inside an OK reply: the SDK resolves with
// a status whose error_code is not Success.
function assertFailed(status, reason) {
  assert.notEqual(status.error_code, 'Success', `expected a refusal containing "${reason}"`);
  assert.match(status.reason, new RegExp(reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
}

async function assertUnauthenticated(token) {
  const c = client(token);
  try {
    await assert.rejects(() => c.listCollections(), /auth check failure, please check username and password are correct/);
  } finally {
    await c.closeConnection();
  }
}

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'authproxy-node-'));
  const [backendPort, proxyPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  start('fakemilvus', ['--listen', `127.0.0.1:${backendPort}`], 'fake.log');
  await waitPort(backendPort, 10000);
  proxyAddr = `127.0.0.1:${proxyPort}`;
  configPath = path.join(dir, 'authproxy.yaml');
  fs.writeFileSync(configPath, [
    `listen: "${proxyAddr}"`,
    `backend:\n  address: "127.0.0.1:${backendPort}"`,
    `credentials:\n  file: "${path.join(dir, 'credentials.yaml')}"`,
    `admin:\n  listen: "127.0.0.1:${adminPort}"`,
    'common:\n  security:\n    authorizationEnabled: true\n    superUsers: ""',
    '',
  ].join('\n'));
  start('authproxy', ['serve', '--config', configPath], 'authproxy.log');
  await waitPort(proxyPort, 10000);
});

after(() => {
  for (const p of procs) p.kill('SIGTERM');
});

test('the seed user walk with the Node SDK', async () => {
  // Connect with the default root user.
  const root = client('root:Milvus');
  const version = await root.getVersion();
  assert.equal(version.version, 'v2.6.2-fake');

  // Create a user and describe it.
  assert.equal((await root.createUser({ username: 'user_1', password: 'P@ssw0rd' })).error_code, 'Success');
  const described = await root.describeUser({ username: 'user_1' });
  assert.equal(described.results.length, 1);
  assert.equal(described.results[0].user.name, 'user_1');
  assert.deepEqual(described.results[0].roles, []);

  // Connect as the new user.
  const user1 = client('user_1:P@ssw0rd');
  assert.equal((await user1.listCollections()).status.error_code, 'Success');

  // Update the password: the old one fails, the new one works.
  assert.equal((await user1.updateUser({ username: 'user_1', oldPassword: 'P@ssw0rd', newPassword: 'P@ssw0rd123' })).error_code, 'Success');
  await user1.closeConnection();
  await assertUnauthenticated('user_1:P@ssw0rd');
  const user1b = client('user_1:P@ssw0rd123');
  assert.equal((await user1b.listCollections()).status.error_code, 'Success');

  // Without superUsers root needs the old password; with "root, foo" it does not.
  assertFailed(await root.updateUser({ username: 'user_1', oldPassword: 'wrong-old', newPassword: 'Reset-by-root' }),
    'old password not correct for user_1');
  fs.writeFileSync(configPath, fs.readFileSync(configPath, 'utf8').replace('superUsers: ""', 'superUsers: "root, foo"'));
  await eventually(5000, async () => {
    const st = await root.updateUser({ username: 'user_1', oldPassword: 'wrong-old', newPassword: 'Reset-by-root' });
    assert.equal(st.error_code, 'Success', st.reason);
  });

  // A non-admin user cannot create users.
  await user1b.closeConnection();
  const user1c = client('user_1:Reset-by-root');
  await assert.rejects(() => user1c.createUser({ username: 'user_2', password: 'P@ssw0rd' }),
    /PrivilegeCreateOwnership: permission deny to user_1/);
  await user1c.closeConnection();

  // Drop the user and list the rest.
  assert.equal((await root.deleteUser({ username: 'user_1' })).error_code, 'Success');
  await assertUnauthenticated('user_1:Reset-by-root');
  assert.deepEqual((await root.listUsers()).usernames, ['root']);

  // The limitations, each refused with a message naming the rule.
  const limits = [
    ['', 'P@ssw0rd', 'username must be not empty'],
    ['u'.repeat(33), 'P@ssw0rd', 'the length of username must be less than 32'],
    ['1user', 'P@ssw0rd', 'the first character must be a letter'],
    ['user-2', 'P@ssw0rd', 'username must contain only numbers, letters and underscores'],
    ['user_2', 'short', 'invalid password length: invalid parameter[5 out of range 6 <= value <= 256]'],
    ['user_2', 'p'.repeat(257), 'invalid password length: invalid parameter[257 out of range 6 <= value <= 256]'],
  ];
  for (const [username, password, reason] of limits) {
    let status;
    try {
      status = await root.createUser({ username, password });
    } catch (e) {
      // The SDK checks some inputs itself before sending.
      assert.ok(username === '' || password === '', `createUser(${username}) threw: ${e.message}`);
      continue;
    }
    assertFailed(status, reason);
  }
  await root.closeConnection();
});

test('the RBAC grant and role steps with the Node SDK', async () => {
  const root = client('root:Milvus');
  const ok = (st) => assert.equal(st.error_code, 'Success', st.reason);
  ok(await root.createRole({ roleName: 'reader' }));
  ok(await root.grantPrivilege({ roleName: 'reader', object: 'Collection', objectName: 'books', privilegeName: 'Search' }));
  ok(await root.grantPrivilegeV2({ role: 'reader', privilege: 'CollectionReadOnly', db_name: 'default', collection_name: 'films' }));
  ok(await root.createUser({ username: 'alice', password: 'Alice-pw-1' }));
  ok(await root.grantRole({ username: 'alice', roleName: 'reader' }));

  // SelectGrant and SelectUser answer in Milvus's shape.
  const grants = await root.listGrants({ roleName: 'reader' });
  ok(grants.status);
  const seen = grants.entities.map((e) =>
    [e.role.name, e.object.name, e.object_name, e.db_name, e.grantor.user.name, e.grantor.privilege.name].join(' ')).sort();
  assert.deepEqual(seen, [
    'reader Collection books default root Search',
    'reader Global films default root CollectionReadOnly',
  ]);
  const alice = await root.describeUser({ username: 'alice', includeRoleInfo: true });
  assert.deepEqual(alice.results[0].roles.map((r) => r.name), ['reader']);

  // What alice may not do is refused with Milvus's message.
  const asAlice = client('alice:Alice-pw-1');
  await assert.rejects(() => asAlice.dropCollection({ collection_name: 'books' }),
    /PrivilegeDropCollection: permission deny to alice in the `default` database/);
  await assert.rejects(() => asAlice.createRole({ roleName: 'mine' }),
    /PrivilegeCreateOwnership: permission deny to alice/);
  await asAlice.closeConnection();

  // A role that holds grants is not dropped; revoked, it is.
  assertFailed(await root.dropRole({ roleName: 'reader' }), 'fail to drop the role that it has privileges');
  ok(await root.revokePrivilege({ roleName: 'reader', object: 'Collection', objectName: 'books', privilegeName: 'Search' }));
  ok(await root.revokePrivilegeV2({ role: 'reader', privilege: 'CollectionReadOnly', db_name: 'default', collection_name: 'films' }));
  ok(await root.dropRole({ roleName: 'reader' }));
  await root.closeConnection();
});

test('a user description round-trips through create, describe and update', async () => {
  const root = client('root:Milvus');
  const ok = (st) => assert.equal(st.error_code, 'Success', st.reason);
  const describe = async (c) => (await c.describeUser({ username: 'described' })).results[0].description;
  ok(await root.createUser({ username: 'described', password: 'P@ssw0rd', description: 'reads books' }));
  assert.equal(await describe(root), 'reads books');
  // update_user with a description and no password change.
  ok(await root.updateUser({ username: 'described', description: 'writes films' }));
  assert.equal(await describe(root), 'writes films');
  // The user may change their own.
  const self = client('described:P@ssw0rd');
  ok(await self.updateUser({ username: 'described', description: 'my own words' }));
  assert.equal(await describe(self), 'my own words');
  await self.closeConnection();
  // The description survives a password change.
  ok(await root.updateUser({ username: 'described', oldPassword: 'P@ssw0rd', newPassword: 'P@ssw0rd2' }));
  assert.equal(await describe(root), 'my own words');
  await root.closeConnection();
});
