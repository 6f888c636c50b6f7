// The console's entry: the session, the page frame and the router. Every page has its own URL
// (History API); the server answers every console path with the same shell, and this script
// draws the page the path names.

import { api, currentSession, signIn, signOut } from './api.js';
import { button, errorBox, field, h, link, mount, notify } from './dom.js';
import * as settings from './settings.js';
import * as projects from './projects.js';
import * as browser from './browser.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let me = null;
let generation = 0;

/** The pages: a path pattern, the page, and whether it is System Settings (admins only). */
const routes = [
  [/^\/$/, () => navigate('/projects', { replace: true })],
  [/^\/sign-in$/, signInPage, { open: true }],
  [/^\/projects$/, projects.list],
  [/^\/projects\/new$/, projects.create, { admin: true }],
  [/^\/projects\/([^/]+)$/, projects.overview],
  [/^\/projects\/([^/]+)\/data(\/.*)?$/, browser.folder],
  [/^\/projects\/([^/]+)\/file(\/.+)$/, browser.file],
  [/^\/jobs\/([^/]+)$/, jobPage],
  [/^\/settings$/, () => navigate('/settings/storage/configurations', { replace: true }), { admin: true }],
  [/^\/settings\/storage\/credentials$/, settings.credentials, { admin: true }],
  [/^\/settings\/storage\/credentials\/new$/, settings.newCredential, { admin: true }],
  [/^\/settings\/storage\/credentials\/([^/]+)$/, settings.credential, { admin: true }],
  [/^\/settings\/storage\/configurations$/, settings.configurations, { admin: true }],
  [/^\/settings\/storage\/configurations\/new$/, settings.newConfiguration, { admin: true }],
  [/^\/settings\/storage\/configurations\/([^/]+)$/, settings.configuration, { admin: true }],
  [/^\/settings\/tokens$/, settings.tokens, { admin: true }],
  [/^\/settings\/tokens\/new$/, settings.newToken, { admin: true }],
  [/^\/settings\/audit$/, settings.audit, { admin: true }],
];

/** Goes to a console page, as a link would. */
export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  return render();
}

/** The context a page draws with. */
function context(params, gen) {
  return {
    main,
    params,
    me,
    navigate,
    /** Whether this page is still the one shown (the user may have moved on). */
    current: () => gen === generation,
    /** Draws the page again with what the server says now, leaving the focus where it is. */
    refresh: () => render({ quiet: true }),
    title(text) {
      document.title = `${text} · byos`;
    },
  };
}

async function render({ quiet = false } = {}) {
  const gen = ++generation;
  const path = location.pathname;
  if (!me && path !== '/sign-in') {
    me = await currentSession().catch(() => null);
    if (gen !== generation) return;
    if (!me) {
      const next = path + location.search;
      history.replaceState(null, '', `/sign-in?next=${encodeURIComponent(next)}`);
      drawFrame();
      return signInPage(context([], gen));
    }
  }
  drawFrame();
  for (const [pattern, page, options = {}] of routes) {
    const match = pattern.exec(path);
    if (!match) continue;
    if (options.admin && me && me.role !== 'admin') {
      return showError(context([], gen), {
        message: 'System Settings are for admins.',
        fix: 'Sign in with an admin token to manage storage and tokens.',
      });
    }
    const params = match.slice(1).map((p) => (p === undefined ? p : safeDecode(p)));
    const ctx = context(params, gen);
    if (!quiet) mount(main, h('p', { class: 'loading', 'aria-live': 'polite' }, 'Loading…'));
    const focused = document.activeElement && document.activeElement.id;
    try {
      await page(ctx);
      // For the console's benchmark (BENCHMARKS.md): when a page has its content.
      if (ctx.current()) performance.mark('byos:page-drawn');
    } catch (err) {
      if (ctx.current()) showError(ctx, err);
    }
    if (!ctx.current()) return undefined;
    if (!quiet) focusHeading();
    else if (focused && document.getElementById(focused)) document.getElementById(focused).focus({ preventScroll: true });
    return undefined;
  }
  return showError(context([], gen), {
    code: 'not-found',
    message: `There is no page at ${path}.`,
    fix: 'Follow a link from the menu.',
  });
}

function safeDecode(value) {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function showError(ctx, err) {
  ctx.title('Error');
  const notFound = err && (err.status === 404 || err.code === 'not-found');
  mount(main, h('h1', {}, notFound ? 'Not found' : 'Something went wrong'), errorBox(err),
    h('p', {}, link('/projects', 'Back to the projects')));
}

/** Moves focus to the page's heading, so that screen readers announce the new page. */
function focusHeading() {
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function drawFrame() {
  const here = location.pathname;
  const item = (href, label) => h('li', {}, h('a', { href, 'aria-current': here.startsWith(href) ? 'page' : false }, label));
  if (!me) {
    mount(nav);
    return;
  }
  mount(nav,
    h('ul', { class: 'nav-main' },
      item('/projects', 'Projects'),
      me.role === 'admin' ? [
        item('/settings/storage/credentials', 'Credentials'),
        item('/settings/storage/configurations', 'Configurations'),
        item('/settings/tokens', 'Tokens'),
        item('/settings/audit', 'Audit log'),
      ] : null),
    h('div', { class: 'nav-user' },
      h('span', { class: 'who' }, `${me.name} (${me.role})`),
      button('Sign out', async () => {
        try {
          await signOut();
        } catch (err) {
          notify(err.message);
        }
        me = null;
        navigate('/sign-in');
      })));
}

async function signInPage(ctx) {
  ctx.title('Sign in');
  const token = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, spellcheck: 'false' });
  const errors = h('div', { 'aria-live': 'polite' });
  const form = h('form', { class: 'card narrow', novalidate: true },
    h('h1', {}, 'Sign in to byos'),
    field('API token', token, 'A token from your admin, or the admin token the server printed at its first start (byos-data/admin-token).'),
    errors,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      me = await signIn(token.value.trim());
      token.value = '';
      const next = new URLSearchParams(location.search).get('next');
      navigate(next && next.startsWith('/') && !next.startsWith('//') ? next : '/projects', { replace: true });
    } catch (err) {
      mount(errors, errorBox(err));
      token.focus();
    }
  });
  mount(main, form);
  token.focus();
}

/** A job's page: its progress while it runs, and how it ended. */
async function jobPage(ctx) {
  const [id] = ctx.params;
  const job = await api('GET', `/api/v1/jobs/${encodeURIComponent(id)}`);
  ctx.title(`Job ${job.type}`);
  // A copy names its source project; one the caller cannot see keeps its id.
  const source = job.source
    ? await api('GET', `/api/v1/projects/${encodeURIComponent(job.source.projectId)}`).catch(() => null)
    : null;
  const view = h('div');
  mount(ctx.main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumbs' }, link(`/projects/${job.projectId}`, 'Project'), ' / ', 'Job'),
    h('h1', {}, projects.jobTitle(job, source && source.name)), view);
  await projects.followJob(ctx, job, view, source && source.name);
}

// Links inside the console change the page without a reload.
document.addEventListener('click', (event) => {
  const a = event.target.closest('a[href]');
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  if (a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  event.preventDefault();
  if (url.pathname + url.search !== location.pathname + location.search) navigate(url.pathname + url.search);
});
window.addEventListener('popstate', () => render());
window.addEventListener('byos:signed-out', () => {
  if (me && location.pathname !== '/sign-in') {
    me = null;
    notify('Your session has ended; sign in again.');
    navigate(`/sign-in?next=${encodeURIComponent(location.pathname)}`, { replace: true });
  }
});

render();
