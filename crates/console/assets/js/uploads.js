// Uploads from the browser straight to the bucket, over the presigned URLs of the uploads API:
// one PUT for a small file, parts for a large one (several at once, each retried, an expired
// URL signed again), with a bar per file and one for all. An upload the page lost (a reload, a
// closed tab) stays open on the server; dropping the same file on the same folder resumes it
// with the parts S3 already holds.

import { ApiError, api } from './api.js';
import { bytes, button, errorBox, h, mount, plural, progress } from './dom.js';

/** Parts of this size, or larger when a file would need more than 10,000 of them. */
const PART_SIZE = 8 * 1024 * 1024;
const MAX_PARTS = 10000;
/** Parts in flight per file, and files at once. */
const PARTS_AT_ONCE = 4;
const FILES_AT_ONCE = 3;
/** Part URLs signed per request. */
const SIGN_BATCH = 100;
const ATTEMPTS = 5;

const panel = document.getElementById('uploads');
const queue = [];
let running = 0;
let totalBytes = 0;
let doneBytes = 0;
let totalBar = null;
let totalText = null;

/** The upload controls of a folder: pick files or a folder, drop onto `zone`. */
export function uploader(ctx, project, folder, onDone) {
  const files = h('input', { type: 'file', multiple: true, class: 'file-input', tabindex: -1, 'aria-hidden': 'true' });
  const dir = h('input', { type: 'file', multiple: true, webkitdirectory: true, class: 'file-input', tabindex: -1, 'aria-hidden': 'true' });
  const add = (list) => enqueue(project, folder, list.map((f) => ({ file: f, relative: f.webkitRelativePath || f.name })), onDone);
  files.addEventListener('change', () => { add([...files.files]); files.value = ''; });
  dir.addEventListener('change', () => { add([...dir.files]); dir.value = ''; });
  const controls = h('span', { class: 'upload-controls' },
    button('Upload files', () => files.click(), { class: 'primary' }), ' ',
    button('Upload folder', () => dir.click()), files, dir);
  const resumable = h('div', { 'aria-live': 'polite' });
  showResumable(project, folder, resumable);
  return {
    controls,
    resumable,
    attach(zone) {
      let depth = 0;
      zone.addEventListener('dragenter', (event) => { event.preventDefault(); depth += 1; zone.classList.add('dragging'); });
      zone.addEventListener('dragover', (event) => { event.preventDefault(); event.dataTransfer.dropEffect = 'copy'; });
      zone.addEventListener('dragleave', () => { depth -= 1; if (depth <= 0) zone.classList.remove('dragging'); });
      zone.addEventListener('drop', async (event) => {
        event.preventDefault();
        depth = 0;
        zone.classList.remove('dragging');
        const dropped = await droppedFiles(event.dataTransfer);
        enqueue(project, folder, dropped, onDone);
      });
    },
  };
}

/** The files of a drop, folders walked: `{file, relative}` with the path below the drop. */
async function droppedFiles(transfer) {
  const entries = [...transfer.items].map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null));
  if (entries.some((e) => e === null)) return [...transfer.files].map((file) => ({ file, relative: file.name }));
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
      out.push({ file, relative: prefix + file.name });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      }
    }
  };
  for (const entry of entries) await walk(entry, '');
  return out;
}

/** Uploads the server holds open in `folder`: offered to resume by dropping the file again. */
async function showResumable(project, folder, into) {
  let open;
  try {
    open = (await api('GET', `/api/v1/projects/${encodeURIComponent(project.id)}/uploads`)).items;
  } catch {
    return;
  }
  const here = open.filter((u) => u.kind === 'multipart' && u.path.startsWith(folder)
    && !queue.some((q) => q.upload && q.upload.id === u.id));
  if (here.length === 0) return;
  mount(into, h('div', { class: 'card' },
    h('p', {}, `${plural(here.length, 'interrupted upload')} in this folder. Drop or pick the same files again to resume them where they stopped:`),
    h('ul', {}, here.map((u) => h('li', {}, h('code', {}, u.path), ` (${bytes(u.size)}) `,
      button('Discard', async (event) => {
        event.target.disabled = true;
        await api('DELETE', `/api/v1/projects/${encodeURIComponent(project.id)}/uploads/${encodeURIComponent(u.id)}`).catch(() => {});
        event.target.closest('li').remove();
      }, { class: 'link', 'aria-label': `Discard the upload of ${u.path}` }))))));
}

function enqueue(project, folder, files, onDone) {
  if (files.length === 0) return;
  panel.hidden = false;
  if (!totalBar) drawPanel();
  for (const { file, relative } of files) {
    const item = {
      project,
      path: folder + relative.replace(/^\/+/, ''),
      file,
      sent: 0,
      state: 'waiting',
      xhrs: new Set(),
      cancelled: false,
      onDone,
    };
    item.view = h('div', { class: 'upload' });
    panel.querySelector('.upload-list').append(item.view);
    totalBytes += file.size;
    queue.push(item);
    draw(item);
  }
  drawTotal();
  pump();
}

function drawPanel() {
  totalBar = progress('All uploads', 0, 1);
  totalText = h('p', { class: 'state' });
  mount(panel,
    h('div', { class: 'toolbar' }, h('h2', {}, 'Uploads'), h('span', { class: 'spacer' }),
      button('Hide', () => {
        if (queue.some((q) => ['waiting', 'uploading'].includes(q.state))) return;
        panel.hidden = true;
        mount(panel);
        queue.length = 0;
        totalBar = null;
        totalBytes = 0;
        doneBytes = 0;
      }, { 'aria-label': 'Hide the finished uploads' })),
    totalBar, totalText, h('div', { class: 'upload-list' }));
}

function drawTotal() {
  if (!totalBar) return;
  const sent = doneBytes + queue.filter((q) => q.state === 'uploading').reduce((sum, q) => sum + q.sent, 0);
  totalBar.max = Math.max(totalBytes, 1);
  totalBar.value = sent;
  const left = queue.filter((q) => ['waiting', 'uploading'].includes(q.state)).length;
  const failed = queue.filter((q) => q.state === 'failed').length;
  totalText.textContent = `${bytes(sent)} of ${bytes(totalBytes)}; ${left ? `${plural(left, 'file')} to go` : 'done'}${failed ? `, ${failed} failed` : ''}.`;
}

function draw(item) {
  const bar = progress(`Upload of ${item.path}`, item.sent, item.file.size || 1);
  const actions = [];
  if (['waiting', 'uploading'].includes(item.state)) actions.push(button('Cancel', () => cancel(item), { class: 'link', 'aria-label': `Cancel the upload of ${item.path}` }));
  if (item.state === 'failed' || item.state === 'exists') {
    actions.push(button('Retry', () => retry(item, false), { class: 'link', 'aria-label': `Retry the upload of ${item.path}` }));
  }
  if (item.state === 'exists') actions.push(' ', button('Replace', () => retry(item, true), { class: 'link', 'aria-label': `Replace ${item.path}` }));
  const label = {
    waiting: 'Waiting',
    uploading: `${bytes(item.sent)} of ${bytes(item.file.size)}${item.resumed ? ' (resumed)' : ''}`,
    done: `Uploaded, ${bytes(item.file.size)}${item.resumed ? ' (resumed)' : ''}`,
    cancelled: 'Cancelled',
    failed: 'Failed',
    exists: 'A file with this name exists',
  }[item.state];
  mount(item.view,
    h('p', { class: 'name' }, item.path),
    item.state === 'done' ? null : bar,
    h('p', { class: 'state' }, label, ' ', actions),
    item.error ? errorBox(item.error) : null);
}

// Progress events come many times a frame: the bars are drawn once a frame, for the files
// that moved.
const moved = new Set();
let frame = 0;

function redrawSoon(item) {
  moved.add(item);
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    for (const each of moved) if (each.state === 'uploading') draw(each);
    moved.clear();
    drawTotal();
  });
}

function pump() {
  while (running < FILES_AT_ONCE) {
    const next = queue.find((q) => q.state === 'waiting');
    if (!next) break;
    running += 1;
    next.state = 'uploading';
    draw(next);
    upload(next).then(() => {
      next.state = 'done';
      doneBytes += next.file.size;
    }, (err) => {
      if (next.cancelled) {
        next.state = 'cancelled';
        totalBytes -= next.file.size;
      } else if (err.code === 'file-exists') {
        next.state = 'exists';
        next.error = null;
      } else {
        next.state = 'failed';
        next.error = err;
      }
    }).finally(() => {
      running -= 1;
      next.sent = 0;
      draw(next);
      drawTotal();
      if (!queue.some((q) => ['waiting', 'uploading'].includes(q.state))) {
        const done = queue.filter((q) => q.state === 'done');
        if (done.length) next.onDone();
      }
      pump();
    });
  }
}

function retry(item, overwrite) {
  item.state = 'waiting';
  item.error = null;
  item.cancelled = false;
  item.overwrite = overwrite;
  draw(item);
  pump();
}

async function cancel(item) {
  item.cancelled = true;
  for (const xhr of item.xhrs) xhr.abort();
  if (item.state === 'waiting') {
    item.state = 'cancelled';
    totalBytes -= item.file.size;
    draw(item);
    drawTotal();
  }
  if (item.upload) {
    await api('DELETE', `${uploadsPath(item)}/${encodeURIComponent(item.upload.id)}`).catch(() => {});
  }
}

function uploadsPath(item) {
  return `/api/v1/projects/${encodeURIComponent(item.project.id)}/uploads`;
}

function partSizeFor(size) {
  const least = Math.ceil(size / MAX_PARTS);
  const mib = 1024 * 1024;
  return Math.max(PART_SIZE, Math.ceil(least / mib) * mib);
}

/** One file, start to finish. */
async function upload(item) {
  const { file } = item;
  let held = [];
  // An upload of this path and size left open (a reload, a closed tab): take it up again.
  const open = (await api('GET', uploadsPath(item))).items
    .find((u) => u.path === item.path && u.size === file.size && u.kind === 'multipart');
  if (open) {
    const state = await api('GET', `${uploadsPath(item)}/${encodeURIComponent(open.id)}`);
    item.upload = state;
    held = state.parts || [];
    item.resumed = held.length > 0;
  } else {
    item.upload = await api('POST', uploadsPath(item), {
      path: item.path,
      size: file.size,
      contentType: file.type || undefined,
      partSize: partSizeFor(file.size),
      overwrite: item.overwrite || undefined,
    });
  }
  const u = item.upload;
  const complete = `${uploadsPath(item)}/${encodeURIComponent(u.id)}/complete`;
  if (u.kind === 'single') {
    await put(item, u.url, u.headers || {}, file, (sent) => { item.sent = sent; redrawSoon(item); });
    return api('POST', complete, {});
  }
  return uploadParts(item, u, held, complete);
}

async function uploadParts(item, u, held, complete) {
  const etags = new Map(held.map((p) => [p.partNumber, p.eTag]));
  const sentOf = new Map(held.map((p) => [p.partNumber, p.size]));
  const todo = [];
  for (let n = 1; n <= u.partCount; n += 1) if (!etags.has(n)) todo.push(n);
  const urls = new Map();
  const sign = async (numbers) => {
    const signed = await api('POST', `${uploadsPath(item)}/${encodeURIComponent(u.id)}/parts`, { partNumbers: numbers });
    for (const part of signed.parts) urls.set(part.partNumber, part);
  };
  const progressNow = () => {
    item.sent = [...sentOf.values()].reduce((a, b) => a + b, 0);
    redrawSoon(item);
  };
  progressNow();
  let next = 0;
  const worker = async () => {
    while (next < todo.length && !item.cancelled) {
      const n = todo[next];
      next += 1;
      if (!urls.has(n)) await sign(todo.slice(next - 1, next - 1 + SIGN_BATCH).filter((m) => !urls.has(m)));
      const start = (n - 1) * u.partSize;
      const blob = item.file.slice(start, Math.min(start + u.partSize, u.size));
      for (let attempt = 1; ; attempt += 1) {
        const part = urls.get(n);
        try {
          const etag = await put(item, part.url, part.headers || {}, blob, (sent) => { sentOf.set(n, sent); progressNow(); });
          etags.set(n, etag);
          break;
        } catch (err) {
          if (item.cancelled || attempt >= ATTEMPTS || !err.retryable) throw err;
          sentOf.set(n, 0);
          // An expired URL is signed again; anything else waits a little, longer each time.
          if (err.expired) await sign([n]);
          else await new Promise((resolve) => setTimeout(resolve, Math.random() * 250 * 2 ** attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARTS_AT_ONCE, todo.length) }, worker));
  if (item.cancelled) throw new ApiError(0, { message: 'Cancelled.' });
  const parts = [...etags.entries()].sort((a, b) => a[0] - b[0]).map(([partNumber, eTag]) => ({ partNumber, eTag }));
  return api('POST', complete, { parts });
}

/** A PUT to S3, with progress; resolves with the ETag S3 answers. */
function put(item, url, headers, body, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    item.xhrs.add(xhr);
    xhr.open('PUT', url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.loaded);
    xhr.onload = () => {
      item.xhrs.delete(xhr);
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(body.size);
        const etag = xhr.getResponseHeader('ETag');
        if (!etag) {
          reject(storageError(0, 'S3 took the part but its ETag is not readable from this page.',
            'The bucket\'s CORS configuration must expose the ETag header: `byos aws cors` prints one that does; `byos aws doctor --fix` applies it.', false));
          return;
        }
        resolve(etag);
      } else {
        reject(s3Refusal(xhr));
      }
    };
    xhr.onerror = () => {
      item.xhrs.delete(xhr);
      reject(storageError(0, `The bucket did not accept the upload from this page (${location.origin}): its CORS configuration does not allow this origin, or S3 cannot be reached from this browser.`,
        `The bucket owner allows the console's origin: \`byos aws cors --origin ${location.origin}\` prints the rule (apply it with \`aws s3api put-bucket-cors\`), or \`byos aws doctor --bucket ${item.project.bucket} --origin ${location.origin} --fix\` adds it.`, true));
    };
    xhr.onabort = () => {
      item.xhrs.delete(xhr);
      reject(storageError(0, 'Cancelled.', '', false));
    };
    xhr.send(body);
  });
}

function storageError(status, message, fix, retryable) {
  const err = new ApiError(status, { code: status ? 's3-refused' : 'storage-unreachable', message, fix, type: 'Storage' });
  err.retryable = retryable;
  return err;
}

/** What S3 said when it refused a PUT: its error code and message. */
function s3Refusal(xhr) {
  const text = xhr.responseText || '';
  const code = (/<Code>([^<]*)<\/Code>/.exec(text) || [])[1] || `HTTP ${xhr.status}`;
  const message = (/<Message>([^<]*)<\/Message>/.exec(text) || [])[1] || '';
  const expired = code === 'AccessDenied' && /expired/i.test(message);
  const err = storageError(xhr.status, `S3 refused the upload: ${code}${message ? `: ${message}` : ''}`,
    expired ? 'The upload URL expired; it is signed again.' : 'Retry; if it keeps failing, `byos aws doctor` checks the bucket\'s permissions.',
    expired || xhr.status >= 500 || xhr.status === 408 || xhr.status === 429);
  err.expired = expired;
  return err;
}
