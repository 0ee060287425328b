'use strict';
// node --test tests/terraform/policy.test.js  (tests/terraform/check.sh sets
// NODE_PATH to where @cdktf/hcl2json is installed)
//
// 1. every .tf / .tftest.hcl under terraform/ parses with HashiCorp's HCL
//    parser (hcl2json);
// 2. every module directory passes every policy in policy.js;
// 3. each bad fixture under fixtures/ fails with exactly the rule named in
//    the table below, so every policy is shown to catch a violation.

const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');

// hcl2json runs Go compiled to WebAssembly, which needs Web Crypto as a
// global; Node 18 (Debian 12) has it only as require('crypto').webcrypto.
if (!globalThis.crypto) globalThis.crypto = require('node:crypto').webcrypto;
const { parse } = require('@cdktf/hcl2json');
const { checkModule, within } = require('./policy.js');

const ROOT = path.resolve(__dirname, '../..');
const TF_DIR = path.join(ROOT, 'terraform');
const FIXTURES = path.join(__dirname, 'fixtures');

// fixture file → the rules it must break (and no others).
const BAD = [
  ['vm-public-ip.tf', 'vm-no-public-ip'],
  ['vm-public-ip-dynamic.tf', 'vm-no-public-ip'],
  ['firewall-5432-world.tf', 'db-port-not-public'],
  ['firewall-5432-world-via-variable.tf', 'db-port-not-public'],
  ['firewall-all-ports-world.tf', 'db-port-not-public', 'ssh-only-from-iap'],
  ['firewall-5432-port-range.tf', 'db-port-not-public'],
  ['firewall-5432-wide-private.tf', 'db-port-not-public'],
  ['firewall-5432-no-target.tf', 'db-port-not-public'],
  ['firewall-ssh-world.tf', 'ssh-only-from-iap'],
  ['metadata-random-password.tf', 'no-secret-in-metadata'],
  ['metadata-password-via-local.tf', 'no-secret-in-metadata'],
  ['metadata-literal-password.tf', 'no-secret-in-metadata'],
  ['startup-script-password-variable.tf', 'no-secret-in-metadata'],
  ['output-random-password.tf', 'no-secret-in-outputs'],
  ['output-secret-data.tf', 'no-secret-in-outputs'],
  ['output-named-password.tf', 'no-secret-in-outputs'],
  ['variable-no-description.tf', 'variable-described-typed'],
  ['variable-no-type.tf', 'variable-described-typed'],
  ['variable-quoted-type.tf', 'variable-described-typed'],
  ['variable-no-validation.tf', 'variable-validated'],
  ['connector-long-name.tf', 'connector-name'],
  ['connector-unvalidated-variable.tf', 'connector-name'],
  ['connector-bad-default.tf', 'connector-name'],
  ['bucket-no-public-access-prevention.tf', 'bucket-hardened'],
  ['artifact-bucket-object-user.tf', 'artifact-read-only'],
  ['artifact-bucket-object-admin.tf', 'artifact-read-only'],
  ['artifact-bucket-policy-writer.tf', 'artifact-read-only'],
  ['artifact-project-object-creator.tf', 'artifact-read-only'],
  ['syntax-error.tf', 'parse'],
];

const RULES = [
  'vm-no-public-ip', 'db-port-not-public', 'ssh-only-from-iap',
  'no-secret-in-metadata', 'no-secret-in-outputs', 'variable-described-typed',
  'variable-validated', 'connector-name', 'bucket-hardened', 'artifact-read-only',
];

function hclFiles(dir) {
  const out = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) {
      if (ent.name !== '.terraform') out.push(...hclFiles(p));
    } else if (/\.tf$|\.tftest\.hcl$/.test(ent.name)) {
      out.push(p);
    }
  }
  return out.sort();
}

async function parseFile(file) {
  return parse(path.basename(file), fs.readFileSync(file, 'utf8'));
}

// Violations of one fixture; a parse failure counts as rule "parse".
async function fixtureViolations(name) {
  const file = path.join(FIXTURES, name);
  let json;
  try {
    json = await parseFile(file);
  } catch (e) {
    return [{ rule: 'parse', file: name, message: String(e.message || e) }];
  }
  return checkModule([{ file: name, json }]);
}

test('terraform/ holds modules, an example and tests', () => {
  const files = hclFiles(TF_DIR).map((f) => path.relative(TF_DIR, f));
  for (const mod of ['network', 'vpc-connector', 'secrets', 'backup-bucket', 'artifacts', 'postgres-vm'])
    for (const f of ['main.tf', 'variables.tf', 'outputs.tf', 'versions.tf'])
      assert.ok(files.includes(`modules/${mod}/${f}`), `modules/${mod}/${f} is missing`);
  assert.ok(files.some((f) => f.startsWith('examples/')), 'no example under terraform/examples');
  assert.ok(files.some((f) => /^tests\/.*\.tftest\.hcl$/.test(f)), 'no terraform/tests/*.tftest.hcl');
});

test('every .tf and .tftest.hcl under terraform/ parses and passes every policy', async (t) => {
  const byDir = new Map();
  for (const file of hclFiles(TF_DIR)) {
    const rel = path.relative(ROOT, file);
    let json;
    await t.test(`parse ${rel}`, async () => {
      json = await parseFile(file);
    });
    if (!json || file.endsWith('.tftest.hcl')) continue;
    const dir = path.dirname(rel);
    if (!byDir.has(dir)) byDir.set(dir, []);
    byDir.get(dir).push({ file: rel, json });
  }
  assert.ok(byDir.size >= 7, `expected the 6 modules and an example, found ${[...byDir.keys()]}`);
  for (const [dir, files] of byDir) {
    await t.test(`policies ${dir}`, () => {
      const v = checkModule(files);
      assert.deepStrictEqual(v.map((x) => `${x.rule}: ${x.file}: ${x.message}`), []);
    });
  }
});

test('each bad fixture breaks exactly its rules', async (t) => {
  for (const [name, ...rules] of BAD) {
    await t.test(`${name} → ${rules.join(', ')}`, async () => {
      const v = await fixtureViolations(name);
      assert.ok(v.length > 0, `${name}: no violation found, expected ${rules}`);
      assert.deepStrictEqual([...new Set(v.map((x) => x.rule))].sort(), [...rules].sort(),
        v.map((x) => `${x.rule}: ${x.message}`).join('\n'));
    });
  }
});

test('the fixture table covers every fixture and every rule', () => {
  const listed = new Set(BAD.map(([f]) => f));
  const onDisk = fs.readdirSync(FIXTURES).filter((f) => f.endsWith('.tf'));
  assert.deepStrictEqual(onDisk.filter((f) => !listed.has(f)), [], 'fixtures missing from the table');
  const covered = new Set(BAD.flatMap(([, ...r]) => r));
  assert.deepStrictEqual(RULES.filter((r) => !covered.has(r)), [], 'rules without a failing fixture');
});

test('CIDR containment used by the SSH rule', () => {
  const cases = [
    ['35.235.240.0/20', '35.235.240.0/20', true],
    ['35.235.241.0/24', '35.235.240.0/20', true],
    ['35.235.0.0/16', '35.235.240.0/20', false],
    ['0.0.0.0/0', '35.235.240.0/20', false],
    ['not-a-cidr', '35.235.240.0/20', false],
  ];
  for (const [inner, outer, want] of cases)
    assert.strictEqual(within(inner, outer), want, `${inner} within ${outer}`);
});

test('artifact-read-only: reading the package bucket and writing another bucket pass', async () => {
  const hcl = `
locals {
  read = ["roles/storage.objectViewer", "roles/storage.legacyObjectReader"]
}
resource "google_storage_bucket" "artifacts" {
  name                        = "p-artifacts"
  location                    = "us-central1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}
resource "google_storage_bucket" "backups" {
  name                        = "p-backups"
  location                    = "us-central1"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}
resource "google_storage_bucket_object" "agent" {
  bucket = google_storage_bucket.artifacts.name
  name   = "packages/orchestrator-agent_0.1.0_amd64.deb"
  source = "orchestrator-agent_0.1.0_amd64.deb"
}
resource "google_storage_bucket_iam_member" "reader" {
  for_each = toset(local.read)
  bucket   = google_storage_bucket.artifacts.name
  role     = each.value
  member   = "serviceAccount:vm@p.iam.gserviceaccount.com"
}
resource "google_storage_bucket_iam_member" "writer" {
  bucket = "p-backups"
  role   = "roles/storage.objectUser"
  member = "serviceAccount:vm@p.iam.gserviceaccount.com"
}
resource "google_project_iam_member" "logs" {
  project = "p"
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:vm@p.iam.gserviceaccount.com"
}
`;
  const v = checkModule([{ file: 'inline.tf', json: await parse('inline.tf', hcl) }]);
  assert.deepStrictEqual(v.map((x) => `${x.rule}: ${x.message}`), []);
});

test('artifact-read-only: a grant on a bucket it cannot tell apart from the package bucket fails', async () => {
  const hcl = `
resource "google_storage_bucket_object" "agent" {
  bucket = "p-artifacts"
  name   = "packages/orchestrator-agent_0.1.0_amd64.deb"
  source = "orchestrator-agent_0.1.0_amd64.deb"
}
resource "google_storage_bucket_iam_member" "writer" {
  bucket = module.other.bucket_name
  role   = "roles/storage.objectCreator"
  member = "serviceAccount:vm@p.iam.gserviceaccount.com"
}
`;
  const v = checkModule([{ file: 'inline.tf', json: await parse('inline.tf', hcl) }]);
  assert.deepStrictEqual(v.map((x) => x.rule), ['artifact-read-only']);
});
