// The data browser: a project's folder one server page at a time (the API's keyset pages, never
// the whole folder), with uploads dropped onto it, new folders, renames and moves, deletes
// (a folder's delete is a job, followed here), downloads over presigned URLs, and a file's
// details: its versions, restore, undelete and archive restore.

import { api, dataHref } from './api.js';
import {
  badge, button, bytes, confirmDialog, dialog, errorBox, field, h, link, mount, notify, plural, tableRow, time,
} from './dom.js';
import { canWrite, credentialsPanel, followJob } from './projects.js';
import { uploader } from './uploads.js';

const PAGE = 200;

function projectBase(id) {
  return `/api/v1/projects/${encodeURIComponent(id)}`;
}

/** The breadcrumbs of `path` (a folder `/a/b/` or a file `/a/b/c.txt`). */
function crumbs(project, path) {
  const parts = path.split('/').filter(Boolean);
  const out = [link('/projects', 'Projects'), ' / ', link(`/projects/${project.id}/data/`, project.name)];
  let at = '/';
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    at += `${part}/`;
    out.push(' / ');
    out.push(last ? h('span', { 'aria-current': 'page' }, part) : link(dataHref(project.id, at), part));
  });
  return h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, out);
}

export async function folder(ctx) {
  const [id, rawPath] = ctx.params;
  const path = normalizeFolder(rawPath);
  const base = projectBase(id);
  let prefix = new URLSearchParams(location.search).get('prefix') || '';
  const [project, first] = await Promise.all([
    api('GET', base),
    api('GET', `${base}/data`, undefined, { query: { path, limit: PAGE, prefix } }),
  ]);
  const writer = canWrite(ctx.me, project.id);
  ctx.title(`${path} · ${project.name}`);

  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const errors = h('div', { 'aria-live': 'polite' });
  const tbody = h('tbody');
  const selectAll = h('input', { type: 'checkbox', 'aria-label': 'Select every entry shown' });
  const more = button('Load more', () => loadMore(), { hidden: true });
  let nextPageToken = first.nextPageToken;
  let shown = [];
  const selected = new Set();

  const columns = [
    ['', (e) => (writer ? h('input', {
      type: 'checkbox',
      'aria-label': `Select ${e.name}`,
      checked: selected.has(e.path),
      onchange: (event) => {
        if (event.target.checked) selected.add(e.path);
        else selected.delete(e.path);
        updateSelection();
      },
    }) : '')],
    ['Name', (e) => (e.type === 'folder'
      ? h('span', { class: 'name' }, link(dataHref(project.id, e.path), `${e.name}/`))
      : h('span', { class: 'name' }, link(dataHref(project.id, e.path, 'file'), e.name)))],
    ['Size', (e) => (e.type === 'file' ? bytes(e.size) : plural(e.children ?? 0, 'item'))],
    ['Last modified', (e) => time(e.lastModified)],
    ['Storage class', (e) => e.storageClass || ''],
    ['Archive', (e) => (e.archiveState ? badge(e.archiveState) : '')],
    ['Actions', (e) => rowActions(e)],
  ];

  const rowActions = (e) => h('span', { class: 'actions-inline' },
    e.type === 'file' ? button('Download', () => download(project, e.path), { class: 'link', 'aria-label': `Download ${e.name}` }) : null,
    writer ? [' ', button('Rename', () => move(ctx, project, e), { class: 'link', 'aria-label': `Rename or move ${e.name}` })] : null);

  function draw(entries) {
    tbody.append(...entries.map((e) => tableRow(columns, e)));
    shown = shown.concat(entries);
    more.hidden = !nextPageToken;
    const empty = prefix ? `No names start with "${prefix}".` : 'This folder is empty.';
    status.textContent = shown.length === 0
      ? empty
      : `${plural(shown.length, 'entry', 'entries')} shown${prefix ? ` starting with "${prefix}"` : ''}${nextPageToken ? '; more to load' : ''}.`;
  }

  // The filter asks the server for the names that start with what is typed: a page at a
  // time, as the folder itself. The URL keeps it, so a link or a reload shows the same list.
  const filter = h('input', { type: 'search', id: 'name-filter', value: prefix, placeholder: 'Names starting with…', autocomplete: 'off', spellcheck: 'false' });
  let typing = null;
  filter.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(async () => {
      const wanted = filter.value.replace(/\//g, '');
      if (wanted === prefix) return;
      try {
        const page = await api('GET', `${base}/data`, undefined, { query: { path, limit: PAGE, prefix: wanted } });
        if (!ctx.current()) return;
        prefix = wanted;
        history.replaceState(null, '', prefix ? `${location.pathname}?prefix=${encodeURIComponent(prefix)}` : location.pathname);
        tbody.replaceChildren();
        shown = [];
        selected.clear();
        updateSelection();
        nextPageToken = page.nextPageToken;
        mount(errors);
        draw(page.items);
      } catch (err) {
        mount(errors, errorBox(err));
      }
    }, 250);
  });

  async function loadMore() {
    more.disabled = true;
    try {
      const page = await api('GET', `${base}/data`, undefined, { query: { path, limit: PAGE, pageToken: nextPageToken, prefix } });
      nextPageToken = page.nextPageToken;
      draw(page.items);
      performance.mark('byos:more-drawn');
    } catch (err) {
      mount(errors, errorBox(err));
    }
    more.disabled = false;
  }

  const removeSelected = button('Delete selected', async () => {
    const paths = [...selected];
    if (!await confirmDialog(`Delete ${plural(paths.length, 'entry', 'entries')}?`,
      `${paths.join(', ')}: folders are deleted with everything in them. On a versioned bucket, deleted files can be brought back.`)) return;
    const jobs = h('div');
    mount(errors, jobs);
    for (const p of paths) {
      try {
        const job = await api('DELETE', `${base}/data`, undefined, { query: { path: p } });
        if (job) {
          const view = h('div');
          jobs.append(view);
          await followJob(ctx, job, view);
        }
      } catch (err) {
        jobs.append(errorBox(err));
      }
    }
    selected.clear();
    if (ctx.current() && !jobs.querySelector('.error')) {
      notify(`Deleted ${plural(paths.length, 'entry', 'entries')}.`);
      ctx.refresh();
    }
  }, { class: 'danger', disabled: true });

  function updateSelection() {
    removeSelected.disabled = selected.size === 0;
    removeSelected.textContent = selected.size ? `Delete selected (${selected.size})` : 'Delete selected';
    selectAll.checked = selected.size > 0 && selected.size === shown.length;
    selectAll.indeterminate = selected.size > 0 && selected.size < shown.length;
  }
  selectAll.addEventListener('change', () => {
    for (const e of shown) {
      if (selectAll.checked) selected.add(e.path);
      else selected.delete(e.path);
    }
    tbody.querySelectorAll('input[type=checkbox]').forEach((box) => { box.checked = selectAll.checked; });
    updateSelection();
  });

  const uploads = writer ? uploader(ctx, project, path, () => ctx.refresh()) : null;
  const newFolder = writer ? button('New folder', async () => {
    const name = h('input', { type: 'text', name: 'name', required: true, autocomplete: 'off' });
    const created = await dialog('New folder', field('Name', name), {
      submit: 'Create',
      onsubmit: () => api('POST', `${base}/folders`, { path: `${path}${name.value.trim().replace(/^\/+|\/+$/g, '')}/` }),
    });
    if (created) ctx.refresh();
  }) : null;

  const table = h('div', { class: 'table-wrap' }, h('table', { class: 'cards' },
    h('caption', { class: 'visually-hidden' }, `Contents of ${path}: folders first, then files, each by name`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, writer ? selectAll : h('span', { class: 'visually-hidden' }, 'Selection')),
      columns.slice(1).map(([heading]) => h('th', { scope: 'col', 'aria-sort': heading === 'Name' ? 'ascending' : false }, heading)))),
    tbody));

  const dropzone = h('div', { class: 'dropzone' }, table);
  if (uploads) uploads.attach(dropzone);

  mount(ctx.main,
    crumbs(project, path),
    h('div', { class: 'toolbar' },
      h('h1', {}, path === '/' ? project.name : path.split('/').filter(Boolean).pop()),
      h('span', { class: 'spacer' }),
      uploads ? uploads.controls : null, newFolder, writer ? removeSelected : null,
      link(`/projects/${project.id}`, 'Overview')),
    uploads ? uploads.resumable : null,
    h('div', { class: 'toolbar' }, h('label', { for: 'name-filter', class: 'visually-hidden' }, 'Filter by the start of the name'), filter, status),
    errors, dropzone, h('div', { class: 'actions' }, more),
    h('details', {}, h('summary', {}, 'Temporary credentials for this folder'), credentialsPanel(ctx, project, path === '/' ? undefined : path)));
  draw(first.items);
}

function normalizeFolder(raw) {
  let path = raw || '/';
  if (!path.startsWith('/')) path = `/${path}`;
  if (!path.endsWith('/')) path += '/';
  return path;
}

/** Downloads a file (or one version) through its presigned URL: the browser saves it. */
async function download(project, path, versionId) {
  try {
    const got = await api('POST', `${projectBase(project.id)}/data/download-url`, { path, versionId });
    const a = h('a', { href: got.url, download: path.split('/').pop(), hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
  } catch (err) {
    notify(err.message);
  }
}

async function move(ctx, project, entry) {
  const to = h('input', { type: 'text', name: 'to', value: entry.path, required: true, autocomplete: 'off' });
  const overwrite = h('input', { type: 'checkbox', name: 'overwrite' });
  const view = h('div');
  const result = await dialog(`Rename or move ${entry.name}`, h('div', {},
    field('New path', to, entry.type === 'folder' ? 'A folder\'s new path ends with /.' : 'Ending with /: into that folder, keeping the name.'),
    h('label', { class: 'choice' }, overwrite, 'Replace what is there')), {
    submit: 'Move',
    onsubmit: () => api('POST', `${projectBase(project.id)}/data/move`, { from: entry.path, to: to.value.trim(), overwrite: overwrite.checked }),
  });
  if (!result) return;
  if (result.status) {
    // A folder's move is a job.
    mount(ctx.main.querySelector('[aria-live]') || ctx.main, view);
    await followJob(ctx, result, view);
  }
  if (ctx.current()) ctx.refresh();
}

export async function file(ctx) {
  const [id, path] = ctx.params;
  const base = projectBase(id);
  // A deleted file of a versioned bucket has no entry but still its versions: its page offers
  // Undelete.
  const [project, e, versions] = await Promise.all([
    api('GET', base),
    api('GET', `${base}/data`, undefined, { query: { path } }).then((page) => page.items[0], (err) => {
      if (err.status === 404) return null;
      throw err;
    }),
    api('GET', `${base}/data/versions`, undefined, { query: { path } }).then((b) => b.items, (err) => err),
  ]);
  const known = Array.isArray(versions) && versions.length > 0;
  if (!e && !known) {
    throw Object.assign(new Error(`There is no file ${path} in ${project.name}.`), { status: 404, code: 'not-found' });
  }
  const name = path.split('/').pop();
  const writer = canWrite(ctx.me, project.id);
  ctx.title(`${name} · ${project.name}`);
  const errors = h('div', { 'aria-live': 'polite' });
  const act = (label, call, attrs) => button(label, async (event) => {
    event.target.disabled = true;
    try {
      await call();
      notify(`${label}: done.`);
      ctx.refresh();
    } catch (err) {
      mount(errors, errorBox(err));
      event.target.disabled = false;
    }
  }, attrs);
  const restoreArchive = writer && e && e.archiveState === 'archived' ? button('Restore from archive', async () => {
    const days = h('input', { type: 'number', name: 'days', min: 1, max: 365, value: 7 });
    const tier = h('select', { name: 'tier' }, ['Standard', 'Bulk', 'Expedited'].map((t) => h('option', { value: t }, t)));
    const done = await dialog(`Restore ${name} from its archive`, h('div', {}, field('Days readable', days), field('Tier', tier)), {
      submit: 'Restore',
      onsubmit: () => api('POST', `${base}/data/archive-restore`, { path, days: Number(days.value), tier: tier.value }),
    });
    if (done) ctx.refresh();
  }) : null;
  const latestDeleted = known && versions[0].isDeleteMarker;
  const remove = writer && e ? button('Delete', async () => {
    if (!await confirmDialog(`Delete ${name}?`, 'On a versioned bucket the file can be brought back with Undelete.')) return;
    try {
      await api('DELETE', `${base}/data`, undefined, { query: { path } });
      notify(`Deleted ${name}.`);
      // On a versioned bucket the page stays, with Undelete; otherwise the file is gone.
      if (known) ctx.refresh();
      else ctx.navigate(dataHref(project.id, path.slice(0, path.lastIndexOf('/') + 1)));
    } catch (err) {
      mount(errors, errorBox(err));
    }
  }, { class: 'danger' }) : null;
  mount(ctx.main,
    crumbs(project, path),
    h('h1', {}, name, e ? '' : [' ', badge('deleted')]),
    e ? h('div', { class: 'card' }, h('dl', { class: 'facts' },
      h('dt', {}, 'Path'), h('dd', {}, h('code', {}, e.path)),
      h('dt', {}, 'Size'), h('dd', {}, `${bytes(e.size)} (${(e.size ?? 0).toLocaleString()} bytes)`),
      h('dt', {}, 'Last modified'), h('dd', {}, time(e.lastModified)),
      h('dt', {}, 'Storage class'), h('dd', {}, e.storageClass || 'not listed yet'),
      e.archiveState ? [h('dt', {}, 'Archive'), h('dd', {}, badge(e.archiveState), e.restoreExpiresAt ? [' until ', e.restoreExpiresAt] : '')] : null,
      e.eTag ? [h('dt', {}, 'ETag'), h('dd', {}, h('code', {}, e.eTag))] : null,
      e.versionId ? [h('dt', {}, 'Version'), h('dd', {}, h('code', {}, e.versionId))] : null))
      : h('p', { class: 'muted' }, 'This file is deleted; its versions remain until the bucket\'s lifecycle removes them.'),
    errors,
    e ? h('div', { class: 'actions' },
      button('Download', () => download(project, path), { class: 'primary' }),
      writer ? button('Rename or move', () => move(ctx, project, e)) : null,
      restoreArchive, remove) : null,
    h('h2', {}, 'Versions'),
    versionsView(versions, project, path, writer, act, latestDeleted));
}

function versionsView(versions, project, path, writer, act, latestDeleted) {
  const base = projectBase(project.id);
  if (!Array.isArray(versions)) return errorBox(versions);
  if (versions.length === 0) return h('p', { class: 'muted' }, 'No versions: the bucket is not versioned.');
  return [
    latestDeleted && writer ? h('div', { class: 'actions' }, act('Undelete', () => api('POST', `${base}/data/undelete`, { path }), { class: 'primary' })) : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'cards' },
      h('caption', { class: 'visually-hidden' }, `Versions of ${path}, newest first`),
      h('thead', {}, h('tr', {}, ['Version', 'Last modified', 'Size', 'Storage class', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, versions.map((v) => h('tr', {},
        h('td', { 'data-label': 'Version' }, h('code', {}, v.versionId), v.isLatest ? ' (current)' : '', v.isDeleteMarker ? ' delete marker' : ''),
        h('td', { 'data-label': 'Last modified' }, time(v.lastModified)),
        h('td', { 'data-label': 'Size' }, v.isDeleteMarker ? '' : bytes(v.size)),
        h('td', { 'data-label': 'Storage class' }, v.storageClass || ''),
        h('td', { 'data-label': 'Actions' },
          !v.isDeleteMarker ? button('Download', () => download(project, path, v.versionId), { class: 'link', 'aria-label': `Download version ${v.versionId}` }) : null,
          writer && !v.isLatest && !v.isDeleteMarker
            ? [' ', act('Restore', () => api('POST', `${base}/data/restore-version`, { path, versionId: v.versionId }), { class: 'link', 'aria-label': `Restore version ${v.versionId}` })]
            : null)))))),
  ];
}

