// Projects: the list, a new project, a project's overview (its storage, its reconcile, its
// members, its jobs, temporary credentials), and the jobs that run on its data.

import { api, items } from './api.js';
import {
  badge, button, bytes, confirmDialog, copyable, errorBox, field, h, link, mount, notify, plural, progress, table, time,
} from './dom.js';

/** The access the caller has to a project: `admin`, `read-write` or `read`. */
export function accessTo(me, projectId) {
  if (me.role === 'admin') return 'admin';
  const grant = me.projects.find((g) => g.id === projectId);
  return grant ? grant.access : null;
}

export function canWrite(me, projectId) {
  return ['admin', 'read-write'].includes(accessTo(me, projectId));
}

export async function list(ctx) {
  ctx.title('Projects');
  const projects = await items('/api/v1/projects');
  const admin = ctx.me.role === 'admin';
  const create = admin ? link('/projects/new', '+ New project') : null;
  if (create) create.className = 'button primary';
  mount(ctx.main,
    h('div', { class: 'toolbar' }, h('h1', {}, 'Projects'), h('span', { class: 'spacer' }), create),
    projects.length === 0
      ? h('p', { class: 'empty card' }, admin ? 'No projects yet. A project keeps its data in a folder of a storage configuration\'s bucket.' : 'Your token reaches no project yet.')
      : table('Projects', [
        ['Name', (p) => link(`/projects/${p.id}/data/`, p.name)],
        ['Region', (p) => p.region],
        ['Storage', (p) => h('code', {}, `s3://${p.bucket}/${p.keyPrefix}`)],
        ['Access', (p) => accessTo(ctx.me, p.id)],
        ['', (p) => link(`/projects/${p.id}`, 'Overview', h('span', { class: 'visually-hidden' }, ` of ${p.name}`))],
      ], projects));
}

export async function create(ctx) {
  ctx.title('New project');
  const configurations = (await items('/api/v1/storage-configurations')).filter((c) => c.status === 'ready');
  const errors = h('div', { 'aria-live': 'polite' });
  const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
  const configuration = h('select', { name: 'configuration' },
    configurations.map((c) => h('option', { value: c.id }, `${c.name}: s3://${c.bucket}/${c.keyPrefix || ''} (${c.region})`)));
  const folder = h('input', { type: 'text', name: 'folder', required: true, autocomplete: 'off', placeholder: 'project-a' });
  const form = h('form', { class: 'card', novalidate: true },
    field('Name', name),
    configurations.length
      ? field('Storage configuration', configuration, 'Only configurations that are ready are offered.')
      : h('p', { class: 'error' }, 'No storage configuration is ready: ', link('/settings/storage/configurations', 'check the configurations'), '.'),
    field('Folder', folder, 'A folder inside the configuration\'s prefix, where the project\'s data lives.'),
    errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create project'), link('/projects', 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = configurations.find((c) => c.id === configuration.value);
    try {
      const created = await api('POST', '/api/v1/projects', {
        name: name.value.trim(),
        storageConfigurationId: configuration.value,
        region: chosen ? chosen.region : undefined,
        folder: folder.value.trim(),
      });
      ctx.navigate(`/projects/${created.id}`);
    } catch (err) {
      mount(errors, errorBox(err));
    }
  });
  mount(ctx.main, h('p', { class: 'crumbs' }, link('/projects', 'Projects'), ' / New'), h('h1', {}, 'New project'), form);
}

export async function overview(ctx) {
  const [id] = ctx.params;
  const base = `/api/v1/projects/${encodeURIComponent(id)}`;
  const admin = ctx.me.role === 'admin';
  const [project, reconcile, jobs, tokens] = await Promise.all([
    api('GET', base),
    api('GET', `${base}/reconcile`).catch(() => null),
    items('/api/v1/jobs', { projectId: id }).catch(() => []),
    admin ? items('/api/v1/tokens') : Promise.resolve(null),
  ]);
  ctx.title(project.name);
  const writer = canWrite(ctx.me, project.id);
  const errors = h('div', { 'aria-live': 'polite' });
  const reconcileNow = writer ? button('Reconcile now', async (event) => {
    event.target.disabled = true;
    try {
      await api('POST', `${base}/reconcile`);
      notify('Reconcile started.');
      ctx.refresh();
    } catch (err) {
      mount(errors, errorBox(err));
      event.target.disabled = false;
    }
  }) : null;
  const remove = admin ? button('Delete project', async () => {
    if (!await confirmDialog(`Delete ${project.name}?`, 'The platform forgets the project and its catalog. The data stays in the bucket.')) return;
    try {
      await api('DELETE', base);
      notify(`Deleted ${project.name}.`);
      ctx.navigate('/projects');
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }, { class: 'danger' }) : null;
  const members = tokens ? tokens.filter((t) => t.role === 'admin' || t.projects.some((g) => g.id === project.id)) : null;
  const browse = link(`/projects/${project.id}/data/`, 'Browse data');
  browse.className = 'button primary';
  mount(ctx.main,
    h('p', { class: 'crumbs' }, link('/projects', 'Projects'), ' / ', project.name),
    h('div', { class: 'toolbar' }, h('h1', {}, project.name), h('span', { class: 'spacer' }), browse),
    h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Storage'), h('dd', {}, h('code', {}, `s3://${project.bucket}/${project.keyPrefix}`)),
      h('dt', {}, 'Region'), h('dd', {}, project.region),
      admin ? [h('dt', {}, 'Configuration'), h('dd', {}, link(`/settings/storage/configurations/${project.storageConfigurationId}`, 'view'))] : null,
      h('dt', {}, 'Your access'), h('dd', {}, accessTo(ctx.me, project.id)),
      h('dt', {}, 'Created'), h('dd', {}, time(project.createdAt)))),
    errors,
    h('h2', {}, 'Sync with the bucket'),
    reconcile ? reconcileSummary(reconcile) : h('p', { class: 'muted' }, 'No reconcile has run yet.'),
    reconcileNow,
    h('h2', {}, 'Temporary credentials'),
    credentialsPanel(ctx, project),
    members ? [
      h('h2', {}, 'Members'),
      table('Members', [
        ['Token', (t) => t.name],
        ['Role', (t) => t.role],
        ['Access', (t) => (t.role === 'admin' ? 'admin' : t.projects.find((g) => g.id === project.id).access)],
        ['Expires', (t) => (t.expiresAt ? time(t.expiresAt) : 'never')],
      ], members),
      h('p', {}, link('/settings/tokens/new', 'Give someone access with a new token')),
    ] : null,
    h('h2', {}, 'Jobs'),
    jobs.length
      ? table('Jobs', [
        ['Job', (j) => link(`/jobs/${j.id}`, `${j.type} ${j.path}`)],
        ['Status', (j) => badge(j.status)],
        ['Progress', (j) => `${(j.progress.objectsDone + j.progress.objectsSkipped).toLocaleString()} / ${j.progress.objectsTotal ?? '…'}`],
        ['Started', (j) => time(j.createdAt)],
      ], jobs)
      : h('p', { class: 'muted' }, 'No jobs.'),
    remove ? h('div', { class: 'actions' }, remove) : null);
  if (reconcile && reconcile.status === 'running') {
    setTimeout(() => { if (ctx.current()) ctx.refresh(); }, 2000);
  }
}

function reconcileSummary(r) {
  const d = r.drift;
  const samples = (label, keys) => (keys.length ? h('p', { class: 'muted' }, `${label}: `, keys.join(', ')) : null);
  return h('div', { class: 'card' },
    h('p', {}, badge(r.status), ` ${r.reason}, started `, time(r.startedAt), r.finishedAt ? [', finished ', time(r.finishedAt)] : ''),
    h('p', {}, `${plural(r.listed, 'key')} listed. Drift: ${d.added} added, ${d.removed} removed, ${d.changed} changed${d.skipped ? `, ${d.skipped} skipped` : ''}.`),
    r.baseline ? h('p', { class: 'muted' }, 'From the S3 Inventory report ', h('code', {}, r.baseline), ', then the keys changed since it.') : null,
    samples('Added', d.addedSamples), samples('Removed', d.removedSamples), samples('Changed', d.changedSamples),
    r.error ? h('p', { class: 'error' }, r.error) : null);
}

/** Temporary credentials for the project, as lines for a shell. */
export function credentialsPanel(ctx, project, path) {
  const out = h('div', { 'aria-live': 'polite' });
  const get = (access) => button(`Get ${access} credentials`, async () => {
    try {
      const c = await api('POST', `/api/v1/projects/${encodeURIComponent(project.id)}/temporary-credentials`, { access, path });
      mount(out, h('div', { class: 'card' },
        h('p', {}, `${access} access to `, h('code', {}, c.s3Uri), ' until ', time(c.expiresAt), '. Paste into a shell, then use any S3 tool:'),
        copyable('environment lines', c.env.join('\n'))));
    } catch (err) {
      mount(out, errorBox(err));
    }
  });
  return h('div', {},
    h('div', { class: 'actions' }, get('read'), canWrite(ctx.me, project.id) ? get('read-write') : null),
    out);
}

/** Draws a job into `view` and keeps it current until it ends; `sourceName` names a copy's
 * source project. */
export async function followJob(ctx, job, view, sourceName) {
  for (;;) {
    mount(view, jobSummary(job, sourceName));
    if (['succeeded', 'failed', 'cancelled'].includes(job.status) || !ctx.current()) return job;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    if (!ctx.current()) return job;
    job = await api('GET', `/api/v1/jobs/${encodeURIComponent(job.id)}`);
  }
}

/** What a job does, in words; `sourceName` names a copy's source project. */
export function jobTitle(job, sourceName) {
  switch (job.type) {
    case 'delete-folder':
      return `Delete ${job.path}`;
    case 'move-folder':
      return `Move ${job.path} to ${job.to}`;
    default: {
      const verb = job.type === 'move' ? 'Move' : 'Copy';
      const paths = job.source.paths.join(', ');
      return `${verb} ${paths} from project ${sourceName || job.source.projectId} into ${job.path}${job.dryRun ? ' (dry run)' : ''}`;
    }
  }
}

/** A copy's preflight checks that failed, each with its fix. */
function failedChecks(job) {
  const failed = (job.preflight || []).filter((c) => c.result === 'failed');
  if (!failed.length) return null;
  return h('ul', {}, failed.map((c) => h('li', {}, h('code', {}, c.name), `: ${c.detail}`, c.fix ? h('p', { class: 'muted' }, c.fix) : null)));
}

export function jobSummary(job, sourceName) {
  const p = job.progress;
  const done = p.objectsDone + p.objectsSkipped + p.objectsFailed;
  const total = p.objectsTotal === null || p.objectsTotal === undefined ? null : p.objectsTotal;
  const cancel = ['queued', 'running'].includes(job.status) && !job.cancelRequested
    ? button('Cancel job', async (event) => {
      event.target.disabled = true;
      try {
        await api('POST', `/api/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
      } catch (err) {
        notify(err.message);
      }
    })
    : null;
  return h('div', { class: 'job' },
    h('p', {}, badge(job.status), ' ', jobTitle(job, sourceName)),
    progress(`Progress of ${job.path}`, done, total),
    h('p', { class: 'muted' }, `${done.toLocaleString()} of ${total === null ? '…' : total.toLocaleString()} objects`,
      p.bytesDone ? `, ${bytes(p.bytesDone)}` : '', p.objectsSkipped ? `, ${p.objectsSkipped} skipped` : '',
      p.objectsFailed ? `, ${p.objectsFailed} failed` : '',
      p.bytesPerSecond ? `, ${bytes(p.bytesPerSecond)}/s` : '',
      p.etaSeconds !== undefined && p.etaSeconds !== null ? `, about ${Math.ceil(p.etaSeconds)} s left` : ''),
    job.error ? errorBox(job.error) : null,
    failedChecks(job),
    job.source ? h('p', {}, h('a', { href: `/api/v1/jobs/${encodeURIComponent(job.id)}/report`, download: `job-${job.id}.jsonl` },
      'Report (one JSON line per object)')) : null,
    job.finishedAt ? h('p', { class: 'muted' }, 'Finished ', time(job.finishedAt)) : null,
    cancel);
}

