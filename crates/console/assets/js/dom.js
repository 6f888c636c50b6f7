// Building the page. Everything that comes from a bucket, a user or the API reaches the page
// through `h`, as text nodes and attribute values, never as markup: a key called
// `<img src=x onerror=alert(1)>.txt` shows as exactly that.

/** An element: `h('a', {href: '/x', class: 'y', onclick: f}, 'text', child, [more])`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'value' || name === 'checked' || name === 'indeterminate') {
      el[name] = value;
    } else if (name === 'dataset') {
      Object.assign(el.dataset, value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `el` holds. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link inside the console: the router takes the click. */
export function link(href, ...children) {
  return h('a', { href }, ...children);
}

let nextId = 0;
/** A labelled form field; `input` gets an id for its label. */
export function field(label, input, hint) {
  const id = input.id || `f${++nextId}`;
  input.id = id;
  const hintEl = hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

export function button(label, onclick, attrs = {}) {
  return h('button', { type: 'button', onclick, ...attrs }, label);
}

/** A status badge: `ready`, `error`, `initializing`, `running`, `failed`, ... */
export function badge(status) {
  return h('span', { class: `badge badge-${String(status).replace(/[^a-z-]/g, '')}` }, status);
}

/** An error as the catalogue tells it: the message, and what to do about it. */
export function errorBox(err) {
  const message = err && err.message ? err.message : String(err);
  return h('div', { class: 'error', role: 'alert' },
    h('p', { class: 'error-message' }, message),
    err && err.fix ? h('p', { class: 'error-fix' }, h('strong', {}, 'Fix: '), err.fix) : null,
    err && err.code ? h('p', { class: 'error-code' }, `Error code: ${err.code}`) : null);
}

/** A table: `columns` are `[heading, cell(row)]`; `cell` returns a node or text. */
export function table(caption, columns, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'cards', ...attrs },
    h('caption', { class: 'visually-hidden' }, caption),
    h('thead', {}, h('tr', {}, columns.map(([heading, , colAttrs]) => h('th', { scope: 'col', ...(colAttrs || {}) }, heading)))),
    h('tbody', {}, rows.map((row) => tableRow(columns, row)))));
}

export function tableRow(columns, row) {
  return h('tr', {}, columns.map(([heading, cell]) => h('td', { 'data-label': heading }, cell(row))));
}

/** Sizes in binary units: `1.5 MiB`. */
export function bytes(n) {
  if (n === null || n === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// One formatter for every time on the page: `toLocaleString` builds a new one at each call,
// which made drawing a page of 200 entries several times slower.
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** A time as the reader's locale writes it, with the exact time as a tooltip. */
export function time(iso) {
  if (!iso) return '';
  return h('time', { datetime: iso, title: iso }, dateFormat.format(new Date(iso)));
}

/** A <dialog>, shown modally; resolves with what `onsubmit` returns, or null when closed. */
export function dialog(title, body, { submit = 'OK', onsubmit, danger = false } = {}) {
  return new Promise((resolve) => {
    const errors = h('div', { 'aria-live': 'polite' });
    const form = h('form', { method: 'dialog' },
      h('h2', {}, title), body, errors,
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: danger ? 'danger' : 'primary' }, submit),
        h('button', { type: 'button', value: 'cancel', onclick: () => close(null) }, 'Cancel')));
    const el = h('dialog', { 'aria-label': title }, form);
    let settled = false;
    const close = (value) => {
      if (settled) return;
      settled = true;
      el.close();
      el.remove();
      resolve(value);
    };
    el.addEventListener('cancel', () => close(null));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const submitButton = form.querySelector('button[type=submit]');
      submitButton.disabled = true;
      try {
        close(onsubmit ? await onsubmit(form) : true);
      } catch (err) {
        mount(errors, errorBox(err));
        submitButton.disabled = false;
      }
    });
    document.body.append(el);
    el.showModal();
  });
}

/** Asks before something that cannot be undone. */
export function confirmDialog(title, text, submit = 'Delete') {
  return dialog(title, h('p', {}, text), { submit, danger: true });
}

/** A short message at the bottom of the screen, read out by screen readers. */
export function notify(message) {
  const region = document.getElementById('notices');
  const note = h('p', { class: 'notice' }, message);
  region.append(note);
  setTimeout(() => note.remove(), 6000);
}

/** A button that copies `text()` to the clipboard. */
export function copyButton(label, text) {
  return button(label, async (event) => {
    try {
      await navigator.clipboard.writeText(text());
      notify('Copied to the clipboard.');
    } catch {
      // Without clipboard access (http on another host), select the text for the user.
      const pre = event.target.closest('.copyable')?.querySelector('pre, code, input');
      if (pre) window.getSelection().selectAllChildren(pre);
      notify('Select the text and copy it: this page may not write to the clipboard.');
    }
  });
}

/** A block of text to copy: shown, with a copy button. */
export function copyable(label, text) {
  return h('div', { class: 'copyable' }, h('pre', { tabindex: 0, 'aria-label': label }, text), copyButton(`Copy ${label}`, () => text));
}

/** A progress bar with its label. */
export function progress(label, value, max) {
  const bar = h('progress', { max: max || 1, value: value || 0, 'aria-label': label });
  if (!max) bar.removeAttribute('value');
  return bar;
}

/** Says `count thing(s)`. */
export function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}
