'use strict';
// Security and style policies over Terraform parsed by a real HCL parser
// (@cdktf/hcl2json: HashiCorp's HCL library compiled to WebAssembly).
// The parser turns every expression into a "${...}" string; the checks
// read literals directly and resolve var.NAME / local.NAME within one
// module directory, and treat anything they cannot resolve as failing.
//
// checkModule(files) takes [{ file, json }] of one directory and returns
// [{ rule, file, message }].  Rules:
//   vm-no-public-ip          no access_config on any VM (instance/template)
//   db-port-not-public       ingress admitting 5432 only from /28-or-narrower
//                            ranges (never 0.0.0.0/0) and only to a target
//   ssh-only-from-iap        ingress admitting 22 only from 35.235.240.0/20
//   no-secret-in-metadata    VM metadata / startup script carry no password
//   no-secret-in-outputs     outputs carry no password (sensitive or not)
//   variable-described-typed every variable has a description and a type
//   variable-validated       every variable has a validation block
//   connector-name           connector names match the API's 25-char pattern
//   bucket-hardened          buckets: uniform access, public access prevention
//   artifact-read-only       a bucket holding an object (the package root
//                            installs) grants only object read roles; no
//                            project-wide storage write role anywhere

const CONNECTOR_RE_SRC = '^[a-z][-a-z0-9]{0,23}[a-z0-9]$';
const CONNECTOR_RE = new RegExp(CONNECTOR_RE_SRC);
const IAP_RANGE = '35.235.240.0/20';
const DB_PORT = 5432;

// Whoever can write the bucket the VM's package comes from chooses what root
// installs, so a bucket holding an object may grant reading only.
const ARTIFACT_READ_ROLES = ['roles/storage.objectViewer', 'roles/storage.legacyObjectReader'];
// Project-level roles that write every bucket of the project, the package's
// included (owner and editor hold storage.objects.create/delete too).
const PROJECT_STORAGE_WRITE_ROLES = [
  'roles/storage.admin', 'roles/storage.objectAdmin', 'roles/storage.objectUser',
  'roles/storage.objectCreator', 'roles/owner', 'roles/editor',
];
const BUCKET_IAM = ['google_storage_bucket_iam_member', 'google_storage_bucket_iam_binding', 'google_storage_bucket_iam_policy'];
const PROJECT_IAM = ['google_project_iam_member', 'google_project_iam_binding', 'google_project_iam_policy'];

const PASSWORD_WORD = /(password|passwd|pwd)/i;
const LEAKS = [
  [/\brandom_password\.[\w-]+(\[[^\]]*\])?\.(result|bcrypt_hash)\b/, 'a random_password result'],
  [/\bephemeral\.random_password\b/, 'an ephemeral password'],
  [/\.secret_data(_wo)?\b/, 'secret data'],
  [/\bgoogle_secret_manager_secret_version_access\b/, 'a secret version access'],
];

// "${var.x}" → "x"; otherwise null.
function pureRef(kind, v) {
  if (typeof v !== 'string') return null;
  const m = v.match(new RegExp('^\\$\\{' + kind + '\\.([A-Za-z0-9_-]+)\\}$'));
  return m ? m[1] : null;
}

function isExpr(v) {
  return typeof v === 'string' && v.startsWith('${');
}

// Everything one directory declares, merged across its files.
function collect(files) {
  const mod = { variables: {}, locals: {}, resources: [], data: [], outputs: [] };
  for (const { file, json } of files) {
    for (const [name, blocks] of Object.entries(json.variable || {}))
      mod.variables[name] = { file, body: blocks[0] || {} };
    for (const block of json.locals || [])
      for (const [name, value] of Object.entries(block))
        mod.locals[name] = value;
    for (const [type, byName] of Object.entries(json.resource || {}))
      for (const [name, blocks] of Object.entries(byName))
        for (const body of blocks)
          mod.resources.push({ file, type, name, body });
    for (const [type, byName] of Object.entries(json.data || {}))
      for (const [name, blocks] of Object.entries(byName))
        for (const body of blocks)
          mod.data.push({ file, type, name, body });
    for (const [name, blocks] of Object.entries(json.output || {}))
      mod.outputs.push({ file, name, body: blocks[0] || {} });
  }
  return mod;
}

// A value with var references replaced by their defaults; undefined when
// it cannot be known statically.
function resolve(mod, v) {
  const vname = pureRef('var', v);
  if (vname !== null) {
    const decl = mod.variables[vname];
    if (!decl || !('default' in decl.body) || isExpr(decl.body.default))
      return undefined;
    return decl.body.default;
  }
  const lname = pureRef('local', v);
  if (lname !== null)
    return lname in mod.locals ? resolve(mod, mod.locals[lname]) : undefined;
  if (Array.isArray(v)) {
    const out = v.map((x) => resolve(mod, x));
    return out.some((x) => x === undefined) ? undefined : out;
  }
  if (isExpr(v)) return undefined;
  return v;
}

// The source text of a value with local.NAME references expanded, for
// scanning what may flow into metadata or outputs.
function expandText(mod, v, depth = 0) {
  let text = typeof v === 'string' ? v : JSON.stringify(v);
  if (depth > 8) return text;
  const seen = new Set();
  for (const m of text.matchAll(/\blocal\.([A-Za-z0-9_-]+)/g)) {
    if (seen.has(m[1]) || !(m[1] in mod.locals)) continue;
    seen.add(m[1]);
    text += '\n' + expandText(mod, mod.locals[m[1]], depth + 1);
  }
  return text;
}

// Why this text would leak a password, or null.
function leakIn(text) {
  for (const [re, what] of LEAKS)
    if (re.test(text)) return what;
  for (const m of text.matchAll(/\bvar\.([A-Za-z0-9_-]+)/g))
    if (PASSWORD_WORD.test(m[1]) && !/secret/i.test(m[1]))
      return `var.${m[1]}`;
  // A key named like a password that is not a secret's *name*.
  for (const m of text.matchAll(/["']?([A-Za-z0-9_-]+)["']?\s*[=:]/g))
    if (PASSWORD_WORD.test(m[1]) && !/secret/i.test(m[1]))
      return `the key ${m[1]}`;
  return null;
}

function ip4(s) {
  const p = String(s).split('.');
  if (p.length !== 4 || p.some((x) => !/^\d{1,3}$/.test(x) || +x > 255)) return null;
  return p.reduce((a, x) => a * 256 + +x, 0);
}

function parseCidr(s) {
  const m = String(s).match(/^([\d.]+)\/(\d{1,2})$/);
  if (!m) return null;
  const addr = ip4(m[1]);
  const len = +m[2];
  if (addr === null || len > 32) return null;
  const size = 2 ** (32 - len);
  const base = addr - (addr % size);
  return { base, len, end: base + size - 1 };
}

function within(inner, outer) {
  const a = parseCidr(inner);
  const b = parseCidr(outer);
  return !!a && !!b && a.base >= b.base && a.end <= b.end;
}

// Does this allow block admit TCP port?  true, false, or undefined (unknown).
function admits(mod, allow, port) {
  const proto = resolve(mod, allow.protocol);
  if (proto === undefined) return undefined;
  if (!['tcp', 'all', '6'].includes(String(proto).toLowerCase())) return false;
  if (!('ports' in allow)) return true;
  const ports = resolve(mod, allow.ports);
  if (ports === undefined) return undefined;
  return ports.some((p) => {
    const [lo, hi] = String(p).split('-').map(Number);
    return port >= lo && port <= (hi === undefined ? lo : hi);
  });
}

function firewallChecks(mod, r, out) {
  const b = r.body;
  const dir = resolve(mod, b.direction);
  if (dir !== undefined && String(dir).toUpperCase() === 'EGRESS') return;
  const allows = b.allow || [];
  const admitsPort = (port) => allows.some((a) => admits(mod, a, port) !== false);
  const ranges = 'source_ranges' in b ? resolve(mod, b.source_ranges) : null;
  const where = `google_compute_firewall.${r.name}`;

  if (admitsPort(DB_PORT)) {
    if (ranges === undefined || ranges === null)
      out.push({ rule: 'db-port-not-public', file: r.file,
        message: `${where} admits ${DB_PORT} from source ranges that cannot be checked statically` });
    else
      for (const s of ranges) {
        const c = parseCidr(s);
        if (!c || c.len < 28)
          out.push({ rule: 'db-port-not-public', file: r.file,
            message: `${where} admits ${DB_PORT} from ${s}: only the connector's /28 may reach PostgreSQL` });
      }
    if (!b.target_service_accounts && !b.target_tags)
      out.push({ rule: 'db-port-not-public', file: r.file,
        message: `${where} admits ${DB_PORT} on every VM of the network: target the database VM's service account` });
  }
  if (admitsPort(22)) {
    const bad = ranges ? ranges.filter((s) => !within(s, IAP_RANGE)) : ['(unknown)'];
    if (bad.length)
      out.push({ rule: 'ssh-only-from-iap', file: r.file,
        message: `${where} admits SSH from ${bad.join(', ')}: only IAP's ${IAP_RANGE}` });
  }
}

function vmChecks(mod, r, out) {
  for (const nic of r.body.network_interface || []) {
    const dyn = Object.keys(nic.dynamic || {});
    if (nic.access_config || nic.ipv6_access_config || dyn.some((d) => /access_config$/.test(d)))
      out.push({ rule: 'vm-no-public-ip', file: r.file,
        message: `${r.type}.${r.name} has an access_config: the database VM must have no public IP` });
  }
  for (const key of ['metadata', 'metadata_startup_script']) {
    if (!(key in r.body)) continue;
    const why = leakIn(expandText(mod, r.body[key]));
    if (why)
      out.push({ rule: 'no-secret-in-metadata', file: r.file,
        message: `${r.type}.${r.name} ${key} carries ${why}: pass the secret's name, read it on the VM` });
  }
}

function connectorChecks(mod, r, out) {
  const name = r.body.name;
  const where = `google_vpc_access_connector.${r.name}`;
  const vname = pureRef('var', name);
  if (!isExpr(name)) {
    if (!CONNECTOR_RE.test(String(name)))
      out.push({ rule: 'connector-name', file: r.file,
        message: `${where} name ${name} does not match ${CONNECTOR_RE_SRC} (at most 25 characters)` });
    return;
  }
  const decl = vname !== null ? mod.variables[vname] : undefined;
  const validated = decl && (decl.body.validation || [])
    .some((v) => String(v.condition).includes(`"${CONNECTOR_RE_SRC}"`));
  if (!validated) {
    out.push({ rule: 'connector-name', file: r.file,
      message: `${where} name ${name} is not a variable validated against ${CONNECTOR_RE_SRC}` });
    return;
  }
  const def = decl.body.default;
  if (def !== undefined && def !== null && !CONNECTOR_RE.test(String(def)))
    out.push({ rule: 'connector-name', file: decl.file,
      message: `variable ${vname} default ${def} does not match ${CONNECTOR_RE_SRC}` });
}

function bucketChecks(mod, r, out) {
  const b = r.body;
  if (resolve(mod, b.uniform_bucket_level_access) !== true ||
      resolve(mod, b.public_access_prevention) !== 'enforced')
    out.push({ rule: 'bucket-hardened', file: r.file,
      message: `google_storage_bucket.${r.name} needs uniform_bucket_level_access = true and public_access_prevention = "enforced"` });
}

// Which bucket an expression names: a google_storage_bucket of this
// module (by .name or .id) or a literal; known = false when it cannot be
// told statically (a caller's variable, another module's output).
function bucketOf(mod, v) {
  const m = typeof v === 'string' &&
    v.match(/^\$\{google_storage_bucket\.([A-Za-z0-9_-]+)(\[[^\]]*\])?\.(name|id)\}$/);
  if (m) return { known: true, key: `google_storage_bucket.${m[1]}` };
  const lit = resolve(mod, v);
  if (typeof lit !== 'string' || !lit) return { known: false, key: String(v) };
  const named = mod.resources.find((r) =>
    r.type === 'google_storage_bucket' && resolve(mod, r.body.name) === lit);
  return { known: true, key: named ? `google_storage_bucket.${named.name}` : lit };
}

// Every role a grant may give: the role literals in FIELD (with locals,
// variable defaults, the for_each that each.* comes from and the bindings
// of a referenced google_iam_policy expanded).  A superset, never fewer: both arms of
// a conditional count.  null when some part cannot be known statically.
function grantRoles(mod, body, field) {
  let text = expandText(mod, body[field]);
  if (/\beach\.(value|key)\b/.test(text) && 'for_each' in body)
    text += '\n' + expandText(mod, body.for_each);
  for (const m of text.matchAll(/\bdata\.google_iam_policy\.([A-Za-z0-9_-]+)/g)) {
    const d = mod.data.find((x) => x.type === 'google_iam_policy' && x.name === m[1]);
    if (!d) return null;
    for (const b of d.body.binding || []) text += '\n' + expandText(mod, b.role);
  }
  for (const m of text.matchAll(/\bvar\.([A-Za-z0-9_-]+)/g)) {
    const decl = mod.variables[m[1]];
    if (decl && ['${bool}', '${number}'].includes(decl.body.type)) continue;
    if (!decl || !('default' in decl.body)) return null;
    text += '\n' + JSON.stringify(decl.body.default);
  }
  if (/\bmodule\.|\bdata\.(?!google_iam_policy)/.test(text)) return null;
  const roles = [...new Set([...text.matchAll(/\broles\/[A-Za-z0-9_.]+/g)].map((x) => x[0]))];
  return roles.length ? roles : null;
}

function artifactChecks(mod, out) {
  const artifacts = mod.resources
    .filter((r) => r.type === 'google_storage_bucket_object')
    .map((r) => ({ name: r.name, bucket: bucketOf(mod, r.body.bucket) }));
  for (const r of mod.resources) {
    const where = `${r.type}.${r.name}`;
    if (BUCKET_IAM.includes(r.type) && artifacts.length) {
      const b = bucketOf(mod, r.body.bucket);
      const held = artifacts.find((a) => !a.bucket.known || !b.known || a.bucket.key === b.key);
      if (!held) continue;
      const roles = grantRoles(mod, r.body, r.type.endsWith('_policy') ? 'policy_data' : 'role');
      const bad = roles === null ? ['(roles that cannot be checked statically)']
        : roles.filter((x) => !ARTIFACT_READ_ROLES.includes(x));
      if (bad.length)
        out.push({ rule: 'artifact-read-only', file: r.file,
          message: `${where} grants ${bad.join(', ')} on the bucket of google_storage_bucket_object.${held.name}: only ${ARTIFACT_READ_ROLES.join(' or ')}, or whoever holds it replaces what the VM installs` });
    }
    if (PROJECT_IAM.includes(r.type)) {
      const roles = grantRoles(mod, r.body, r.type.endsWith('_policy') ? 'policy_data' : 'role');
      const bad = roles === null ? ['(roles that cannot be checked statically)']
        : roles.filter((x) => PROJECT_STORAGE_WRITE_ROLES.includes(x));
      if (bad.length)
        out.push({ rule: 'artifact-read-only', file: r.file,
          message: `${where} grants ${bad.join(', ')} project-wide: that writes every bucket, the agent's package included` });
    }
  }
}

function variableChecks(mod, out) {
  for (const [name, { file, body }] of Object.entries(mod.variables)) {
    if (typeof body.description !== 'string' || !body.description.trim())
      out.push({ rule: 'variable-described-typed', file, message: `variable ${name} has no description` });
    if (!isExpr(body.type))
      out.push({ rule: 'variable-described-typed', file,
        message: `variable ${name} has ${'type' in body ? 'a quoted (legacy) type' : 'no type'}` });
    if (!(body.validation || []).length)
      out.push({ rule: 'variable-validated', file, message: `variable ${name} has no validation block` });
  }
}

function outputChecks(mod, out) {
  for (const o of mod.outputs) {
    const why = leakIn(expandText(mod, o.body.value)) ||
      (PASSWORD_WORD.test(o.name) && !/secret/i.test(o.name) ? 'a password by its name' : null);
    if (why)
      out.push({ rule: 'no-secret-in-outputs', file: o.file,
        message: `output ${o.name} carries ${why} (sensitive = true still writes it to state and -json output)` });
  }
}

const RESOURCE_CHECKS = {
  google_compute_firewall: firewallChecks,
  google_compute_instance: vmChecks,
  google_compute_instance_template: vmChecks,
  google_compute_region_instance_template: vmChecks,
  google_vpc_access_connector: connectorChecks,
  google_storage_bucket: bucketChecks,
};

function checkModule(files) {
  const mod = collect(files);
  const out = [];
  for (const r of mod.resources) {
    const fn = RESOURCE_CHECKS[r.type];
    if (fn) fn(mod, r, out);
  }
  artifactChecks(mod, out);
  variableChecks(mod, out);
  outputChecks(mod, out);
  return out;
}

module.exports = { checkModule, parseCidr, within };
