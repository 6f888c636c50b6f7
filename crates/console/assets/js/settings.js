// System Settings: Storage > Credentials, Storage > Configurations, API tokens and the audit log. Admins only
// (the API refuses everyone else; the menu does not offer them).

import { api, items } from './api.js';
import {
  badge, button, confirmDialog, copyable, dialog, errorBox, field, h, link, mount, notify, plural, table, tableRow, time,
} from './dom.js';

const CREDENTIALS = '/api/v1/storage-credentials';
const CONFIGURATIONS = '/api/v1/storage-configurations';

function heading(title, ...actions) {
  return h('div', { class: 'toolbar' },
    h('div', {},
      h('p', { class: 'crumbs' }, 'System Settings', title === 'Tokens' ? '' : ' / Storage'),
      h('h1', {}, title)),
    h('span', { class: 'spacer' }), actions);
}

function input(attrs) {
  return h('input', { type: 'text', spellcheck: 'false', autocomplete: 'off', ...attrs });
}

/** Reads a form's named fields as an object; empty strings are left out. */
function values(form) {
  const out = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (typeof value === 'string' && value.trim() !== '') out[name] = value.trim();
  }
  return out;
}

// ---- Credentials ----------------------------------------------------------------------------

export async function credentials(ctx) {
  ctx.title('Credentials');
  const [list, configurations] = await Promise.all([items(CREDENTIALS), items(CONFIGURATIONS)]);
  const usedBy = (id) => configurations.filter((c) => c.credentialId === id);
  const body = list.length === 0
    ? h('p', { class: 'empty card' }, 'No storage credentials yet. Add the IAM user or role the platform uses to reach a bucket.')
    : table('Storage credentials', [
      ['Name', (c) => link(`/settings/storage/credentials/${c.id}`, c.name)],
      ['Type', (c) => c.type],
      ['Identity', (c) => h('code', {}, c.accessKeyId || c.roleArn || '')],
      ['In use by', (c) => usedBy(c.id).map((u, i) => [i ? ', ' : '', link(`/settings/storage/configurations/${u.id}`, u.name)])],
      ['Updated', (c) => time(c.updatedAt)],
    ], list);
  mount(ctx.main, heading('Credentials', link('/settings/storage/credentials/new', '+ New credential')), body);
  ctx.main.querySelector('.toolbar a').className = 'button primary';
}

export async function newCredential(ctx) {
  ctx.title('New credential');
  const name = input({ name: 'name', required: true, maxlength: 255 });
  const keyId = input({ name: 'accessKeyId', autocomplete: 'off' });
  const secret = h('input', { type: 'password', name: 'secretAccessKey', autocomplete: 'new-password' });
  const roleArn = input({ name: 'roleArn', placeholder: 'arn:aws:iam::111122223333:role/byos-access' });
  const userFields = h('div', {}, field('Access key id', keyId), field('Secret access key', secret, 'Stored encrypted; never shown again.'));
  const roleFields = h('div', { hidden: true }, field('Role ARN', roleArn,
    'The platform assumes this role with an external id it generates; the next page shows the trust policy to give the role.'));
  const typeChoice = (value, label) => h('label', { class: 'choice' },
    h('input', { type: 'radio', name: 'type', value, checked: value === 'aws-user', onchange: () => {
      userFields.hidden = value !== 'aws-user';
      roleFields.hidden = value !== 'aws-role';
    } }), label);
  const errors = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', novalidate: true },
    field('Name', name),
    h('fieldset', {}, h('legend', {}, 'Type'), typeChoice('aws-user', 'IAM user (access key)'), typeChoice('aws-role', 'IAM role (assumed with an external id)')),
    userFields, roleFields, errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create'), link('/settings/storage/credentials', 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = values(form);
    const body = v.type === 'aws-role'
      ? { name: v.name, type: 'aws-role', roleArn: v.roleArn }
      : { name: v.name, type: 'aws-user', accessKeyId: v.accessKeyId, secretAccessKey: v.secretAccessKey };
    try {
      const created = await api('POST', CREDENTIALS, body);
      secret.value = '';
      ctx.navigate(`/settings/storage/credentials/${created.id}`);
    } catch (err) {
      mount(errors, errorBox(err));
    }
  });
  mount(ctx.main, heading('New credential'), form);
}

export async function credential(ctx) {
  const [id] = ctx.params;
  const path = `${CREDENTIALS}/${encodeURIComponent(id)}`;
  const [c, configurations] = await Promise.all([api('GET', path), items(CONFIGURATIONS)]);
  ctx.title(c.name);
  const used = configurations.filter((u) => u.credentialId === c.id);
  const trust = c.type === 'aws-role' ? await api('GET', `${path}/trust-policy`) : null;
  const rotate = button('Rotate', () => rotateCredential(ctx, c));
  const remove = button('Delete', async () => {
    if (!await confirmDialog(`Delete ${c.name}?`, 'The platform forgets this credential. A credential in use by a configuration cannot be deleted.')) return;
    try {
      await api('DELETE', path);
      notify(`Deleted ${c.name}.`);
      ctx.navigate('/settings/storage/credentials');
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }, { class: 'danger' });
  const errors = h('div', { 'aria-live': 'polite' });
  mount(ctx.main,
    h('p', { class: 'crumbs' }, link('/settings/storage/credentials', 'Credentials'), ' / ', c.name),
    h('h1', {}, c.name),
    h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Type'), h('dd', {}, c.type),
      c.accessKeyId ? [h('dt', {}, 'Access key id'), h('dd', {}, h('code', {}, c.accessKeyId))] : null,
      c.roleArn ? [h('dt', {}, 'Role ARN'), h('dd', {}, h('code', {}, c.roleArn))] : null,
      c.externalId ? [h('dt', {}, 'External id'), h('dd', {}, h('code', {}, c.externalId))] : null,
      h('dt', {}, 'In use by'), h('dd', {}, used.length ? used.map((u, i) => [i ? ', ' : '', link(`/settings/storage/configurations/${u.id}`, u.name)]) : 'no configuration'),
      h('dt', {}, 'Created'), h('dd', {}, time(c.createdAt)),
      h('dt', {}, 'Updated'), h('dd', {}, time(c.updatedAt)))),
    trust ? [
      h('h2', {}, 'Trust policy'),
      h('p', { class: 'muted' }, 'Give the role this trust policy in AWS (IAM > Roles > Trust relationships), or run `byos aws trust-policy`. It lets the platform assume the role only with this credential\'s external id.'),
      copyable('trust policy', JSON.stringify(trust, null, 2)),
    ] : null,
    errors,
    h('div', { class: 'actions' }, rotate, remove));
}

async function rotateCredential(ctx, c) {
  const role = c.type === 'aws-role';
  const body = role
    ? field('New role ARN', input({ name: 'roleArn', value: c.roleArn }))
    : h('div', {}, field('New access key id', input({ name: 'accessKeyId', required: true })),
      field('New secret access key', h('input', { type: 'password', name: 'secretAccessKey', autocomplete: 'new-password' })));
  const done = await dialog(`Rotate ${c.name}`, body, {
    submit: 'Rotate',
    onsubmit: (form) => api('POST', `${CREDENTIALS}/${encodeURIComponent(c.id)}/rotate`, values(form)),
  });
  if (done) {
    notify(`Rotated ${c.name}; its configurations are validated again.`);
    ctx.refresh();
  }
}

// ---- Configurations -------------------------------------------------------------------------

function location_(c) {
  return `s3://${c.bucket}/${c.keyPrefix || ''}`;
}

export async function configurations(ctx) {
  ctx.title('Configurations');
  const list = await items(CONFIGURATIONS);
  const body = list.length === 0
    ? h('p', { class: 'empty card' }, 'No storage configurations yet. A configuration connects a bucket and prefix to the platform.')
    : table('Storage configurations', [
      ['Name', (c) => link(`/settings/storage/configurations/${c.id}`, c.name)],
      ['Status', (c) => badge(c.status)],
      ['Region', (c) => [c.region, c.defaultForRegion ? ' (default)' : '']],
      ['Location', (c) => h('code', {}, location_(c))],
      ['Last verified', (c) => time(c.lastVerifiedAt)],
    ], list);
  mount(ctx.main, heading('Configurations', link('/settings/storage/configurations/new', '+ New configuration')), body);
  ctx.main.querySelector('.toolbar a').className = 'button primary';
  // Configurations that are still being checked change by themselves: look again shortly.
  if (list.some((c) => c.status === 'initializing')) {
    setTimeout(() => { if (ctx.current()) ctx.refresh(); }, 2000);
  }
}

export async function newConfiguration(ctx) {
  ctx.title('New configuration');
  const [regions, creds] = await Promise.all([items('/api/v1/regions'), items(CREDENTIALS)]);
  const select = (name, options, attrs = {}) => h('select', { name, ...attrs }, options.map(([value, label]) => h('option', { value }, label)));
  const kmsKey = input({ name: 'kmsKey', placeholder: 'arn:aws:kms:eu-central-1:111122223333:key/…' });
  const kmsField = field('KMS key ARN', kmsKey, 'The customer managed key the bucket encrypts with.');
  kmsField.hidden = true;
  const sse = select('sse', [['', 'None (the bucket\'s default)'], ['AES256', 'SSE-S3 (AES256)'], ['aws:kms', 'SSE-KMS (aws:kms)']],
    { onchange: () => { kmsField.hidden = sse.value !== 'aws:kms'; } });
  const errors = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', novalidate: true },
    field('Name', input({ name: 'name', required: true })),
    field('Region', select('region', regions.map((r) => [r.awsRegion, `${r.name} (${r.awsRegion})`]))),
    creds.length
      ? field('Storage credential', select('credentialId', creds.map((c) => [c.id, `${c.name} (${c.type})`])))
      : h('p', { class: 'error' }, 'No storage credential yet: ', link('/settings/storage/credentials/new', 'add one first'), '.'),
    field('Bucket', input({ name: 'bucket', required: true, placeholder: 'my-bucket' })),
    field('Key prefix', input({ name: 'keyPrefix', placeholder: 'byos/' }), 'Ends with /. The platform owns everything below it.'),
    field('Server-side encryption', sse), kmsField,
    h('label', { class: 'choice' }, h('input', { type: 'checkbox', name: 'defaultForRegion', value: 'true' }), 'Default configuration for its region'),
    errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create and validate'), link('/settings/storage/configurations', 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = values(form);
    const body = {
      name: v.name,
      region: v.region,
      credentialId: v.credentialId,
      bucket: v.bucket,
      keyPrefix: v.keyPrefix,
      defaultForRegion: v.defaultForRegion === 'true',
    };
    if (v.sse) body.serverSideEncryption = { algorithm: v.sse, keyName: v.sse === 'aws:kms' ? v.kmsKey : undefined };
    try {
      const created = await api('POST', CONFIGURATIONS, body);
      ctx.navigate(`/settings/storage/configurations/${created.id}`);
    } catch (err) {
      mount(errors, errorBox(err));
    }
  });
  mount(ctx.main, heading('New configuration'), form);
}

export async function configuration(ctx) {
  const [id] = ctx.params;
  const path = `${CONFIGURATIONS}/${encodeURIComponent(id)}`;
  const c = await api('GET', path);
  ctx.title(c.name);
  const errors = h('div', { 'aria-live': 'polite' });
  const validate = button('Validate now', async (event) => {
    event.target.disabled = true;
    try {
      await api('POST', `${path}/validate`);
      ctx.refresh();
    } catch (err) {
      mount(errors, errorBox(err));
      event.target.disabled = false;
    }
  }, { class: 'primary' });
  const remove = button('Delete', async () => {
    if (!await confirmDialog(`Delete ${c.name}?`, 'The platform stops using this bucket prefix and removes its event notifications. A configuration with projects cannot be deleted.')) return;
    try {
      await api('DELETE', path);
      notify(`Deleted ${c.name}.`);
      ctx.navigate('/settings/storage/configurations');
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }, { class: 'danger' });
  const checks = c.validation ? c.validation.checks : [];
  const failed = checks.filter((check) => check.result === 'failed');
  const doctor = `byos aws doctor --bucket ${c.bucket}${c.keyPrefix ? ` --prefix ${c.keyPrefix}` : ''} --project-region ${c.region}`;
  mount(ctx.main,
    h('p', { class: 'crumbs' }, link('/settings/storage/configurations', 'Configurations'), ' / ', c.name),
    h('h1', {}, c.name, ' ', badge(c.status)),
    h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Location'), h('dd', {}, h('code', {}, location_(c))),
      h('dt', {}, 'Region'), h('dd', {}, c.region, c.defaultForRegion ? ' (default for the region)' : ''),
      h('dt', {}, 'Credential'), h('dd', {}, link(`/settings/storage/credentials/${c.credentialId}`, 'view')),
      h('dt', {}, 'Encryption'), h('dd', {}, c.serverSideEncryption ? [c.serverSideEncryption.algorithm, c.serverSideEncryption.keyName ? ` (${c.serverSideEncryption.keyName})` : ''] : 'the bucket\'s default'),
      h('dt', {}, 'Versioning'), h('dd', {}, c.versioning || 'not known yet'),
      h('dt', {}, 'Last verified'), h('dd', {}, c.lastVerifiedAt ? time(c.lastVerifiedAt) : 'never'))),
    c.error ? errorBox(c.error) : null,
    h('h2', {}, 'Validation report'),
    c.validation
      ? [h('p', { class: 'muted' }, 'Checked ', time(c.validation.checkedAt), `: ${plural(failed.length, 'check')} failed of ${checks.length}.`),
        table('Validation checks', [
          ['Check', (check) => h('code', {}, check.name)],
          ['Result', (check) => badge(check.result)],
          ['Detail', (check) => [check.detail, check.fix ? h('p', { class: 'hint' }, h('strong', {}, 'Fix: '), check.fix) : null]],
        ], checks)]
      : h('p', { class: 'muted' }, c.status === 'initializing' ? 'Validating…' : 'Not validated yet.'),
    c.status === 'error' || failed.length
      ? [h('h2', {}, 'Diagnose the bucket'),
        h('p', { class: 'muted' }, 'The bucket owner can see every check and fix what is missing with the byos CLI (add --fix to apply the fixes):'),
        copyable('doctor command', doctor)]
      : null,
    errors,
    h('div', { class: 'actions' }, validate, remove));
  ctx.main.querySelectorAll('tbody tr').forEach((row, i) => {
    if (checks[i] && checks[i].result === 'failed') row.classList.add('check-failed');
  });
  if (c.status === 'initializing') {
    setTimeout(() => { if (ctx.current()) ctx.refresh(); }, 1500);
  }
}

// ---- Tokens ---------------------------------------------------------------------------------

export async function tokens(ctx) {
  ctx.title('Tokens');
  const [list, projectList] = await Promise.all([items('/api/v1/tokens'), items('/api/v1/projects')]);
  const names = new Map(projectList.map((p) => [p.id, p.name]));
  const errors = h('div', { 'aria-live': 'polite' });
  const revoke = (t) => button('Revoke', async () => {
    if (!await confirmDialog(`Revoke ${t.name}?`, 'The token stops working at once, and its console sessions end.', 'Revoke')) return;
    try {
      await api('DELETE', `/api/v1/tokens/${encodeURIComponent(t.id)}`);
      notify(`Revoked ${t.name}.`);
      ctx.refresh();
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }, { 'aria-label': `Revoke ${t.name}` });
  mount(ctx.main,
    heading('Tokens', link('/settings/tokens/new', '+ New token')),
    errors,
    table('API tokens', [
      ['Name', (t) => [t.name, t.id === ctx.me.tokenId ? ' (you are signed in with it)' : '']],
      ['Role', (t) => t.role],
      ['Projects', (t) => (t.role === 'admin' ? 'all' : t.projects.map((g, i) => [i ? ', ' : '', link(`/projects/${g.id}`, names.get(g.id) || g.id), ` (${g.access})`]))],
      ['Starts with', (t) => h('code', {}, `${t.hint}…`)],
      ['Last used', (t) => (t.lastUsedAt ? time(t.lastUsedAt) : 'never')],
      ['Expires', (t) => (t.expiresAt ? time(t.expiresAt) : 'never')],
      ['', (t) => revoke(t)],
    ], list));
  ctx.main.querySelector('.toolbar a').className = 'button primary';
}

export async function newToken(ctx) {
  ctx.title('New token');
  const projectList = await items('/api/v1/projects');
  const grants = projectList.map((p) => {
    const pick = h('input', { type: 'checkbox', name: 'project', value: p.id });
    const access = h('select', { 'aria-label': `Access to ${p.name}` }, h('option', { value: 'read-write' }, 'read-write'), h('option', { value: 'read' }, 'read'));
    return { p, pick, access, row: h('div', { class: 'choice' }, h('label', { class: 'choice' }, pick, p.name), access) };
  });
  const projectsField = h('fieldset', {}, h('legend', {}, 'Projects the member reaches'),
    grants.length ? grants.map((g) => g.row) : h('p', { class: 'muted' }, 'No projects yet.'));
  const role = h('select', { name: 'role', onchange: () => { projectsField.hidden = role.value === 'admin'; } },
    h('option', { value: 'member' }, 'member: the projects chosen below'), h('option', { value: 'admin' }, 'admin: System Settings and every project'));
  const expires = h('input', { type: 'datetime-local', name: 'expiresAt' });
  const errors = h('div', { 'aria-live': 'polite' });
  const result = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card', novalidate: true },
    field('Name', input({ name: 'name', required: true })),
    field('Role', role), projectsField,
    field('Expires', expires, 'Leave empty for a token that works until it is revoked.'),
    errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create token'), link('/settings/tokens', 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const v = values(form);
    const body = { name: v.name, role: role.value };
    if (role.value === 'member') body.projects = grants.filter((g) => g.pick.checked).map((g) => ({ id: g.p.id, access: g.access.value }));
    if (expires.value) body.expiresAt = new Date(expires.value).toISOString();
    try {
      const created = await api('POST', '/api/v1/tokens', body);
      mount(errors);
      form.hidden = true;
      mount(result, h('div', { class: 'card' },
        h('h2', {}, `Token ${created.name} created`),
        h('p', {}, 'Copy the token now: it is shown this once and cannot be shown again.'),
        copyable('token', created.value),
        h('p', {}, link('/settings/tokens', 'Back to the tokens'))));
    } catch (err) {
      mount(errors, errorBox(err));
    }
  });
  mount(ctx.main, heading('New token'), form, result);
}

// ---- Audit log ------------------------------------------------------------------------------

const AUDIT = '/api/v1/audit-events';
const AUDIT_PAGE = 100;
const AUDIT_FILTERS = ['actor', 'action', 'target', 'since', 'until'];

/** An event's detail as `name: value` lines; nested values as JSON. */
function detailList(detail) {
  if (!detail) return '';
  return h('dl', { class: 'detail' }, Object.entries(detail).map(([name, value]) => [
    h('dt', {}, name),
    h('dd', {}, h('code', { class: 'wrap' }, typeof value === 'string' ? value : JSON.stringify(value))),
  ]));
}

/** A user agent's first product (`byos/0.1.0`, `Mozilla/5.0`); the whole of it is the tooltip. */
function agentName(agent) {
  return agent.split(' ')[0];
}

/** The audit log, newest first, a page at a time. The URL keeps the filters. */
export async function audit(ctx) {
  ctx.title('Audit log');
  const wanted = new URLSearchParams(location.search);
  const filters = {};
  for (const name of AUDIT_FILTERS) if (wanted.get(name)) filters[name] = wanted.get(name);
  const first = await api('GET', AUDIT, undefined, { query: { ...filters, limit: AUDIT_PAGE } });
  let nextPageToken = first.nextPageToken;
  let shown = 0;

  const columns = [
    ['Time', (e) => time(e.at)],
    ['Actor', (e) => h('span', { title: e.actor.tokenId }, e.actor.name)],
    ['Action', (e) => h('code', {}, e.action)],
    ['Outcome', (e) => [badge(e.outcome), ' ', String(e.status)]],
    ['Target', (e) => h('code', { class: 'wrap' }, e.target)],
    ['Detail', (e) => detailList(e.detail)],
    ['Source', (e) => h('span', { title: e.userAgent || '' }, e.sourceIp || '', e.userAgent ? h('span', { class: 'muted' }, ` ${agentName(e.userAgent)}`) : null)],
    ['Request id', (e) => h('code', {}, e.requestId)],
  ];
  const tbody = h('tbody');
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const errors = h('div', { 'aria-live': 'polite' });
  const more = button('Load more', async () => {
    more.disabled = true;
    try {
      const page = await api('GET', AUDIT, undefined, { query: { ...filters, limit: AUDIT_PAGE, pageToken: nextPageToken } });
      nextPageToken = page.nextPageToken;
      draw(page.items);
    } catch (err) {
      mount(errors, errorBox(err));
    }
    more.disabled = false;
  }, { hidden: true });
  function draw(events) {
    tbody.append(...events.map((e) => tableRow(columns, e)));
    shown += events.length;
    more.hidden = !nextPageToken;
    status.textContent = shown === 0
      ? 'No change matches.'
      : `${plural(shown, 'change')} shown${nextPageToken ? '; more to load' : ''}.`;
  }

  const filterInput = (name, label, placeholder) => field(label, input({ name, value: filters[name] || '', placeholder }));
  const form = h('form', { class: 'card filters', role: 'search' },
    filterInput('actor', 'Actor', 'token name or id'),
    filterInput('action', 'Action', 'create_project'),
    filterInput('target', 'Target starts with', '/api/v1/projects/…'),
    filterInput('since', 'Since', '2026-12-01T00:00:00Z'),
    filterInput('until', 'Until', '2026-12-02T00:00:00Z'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'), link('/settings/audit', 'Clear')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const query = new URLSearchParams(values(form)).toString();
    ctx.navigate(query ? `/settings/audit?${query}` : '/settings/audit');
  });

  mount(ctx.main,
    h('div', { class: 'toolbar' }, h('div', {}, h('p', { class: 'crumbs' }, 'System Settings'), h('h1', {}, 'Audit log'))),
    h('p', { class: 'muted' }, 'Every change made through the API or this console: who, what, when, from where, and how it ended. Reads are not recorded.'),
    form, errors, status,
    h('div', { class: 'table-wrap' }, h('table', { class: 'cards', id: 'audit-events' },
      h('caption', { class: 'visually-hidden' }, 'Audit log'),
      h('thead', {}, h('tr', {}, columns.map(([heading]) => h('th', { scope: 'col' }, heading)))),
      tbody)),
    h('div', { class: 'actions' }, more));
  draw(first.items);
}
