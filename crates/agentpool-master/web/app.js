// The agentpool dashboard: renders pools, workers, agents and tasks from the REST API and
// sends the actions back to it. Every value goes into the page as text (textContent), never
// as markup, so nothing the API returns can inject script.
'use strict';

const API = '/api/v1';
// Polling interval while there is no event stream, and the safety-net interval while there is.
const POLL_MS = 1000;
const STREAM_POLL_MS = 10000;
// Rows rendered per table: enough to see what moves, cheap enough to redraw every second.
const MAX_ROWS = 200;
const RECENT_TASKS = 20;
const TOKEN_KEY = 'agentpool.token';
// A refresh that hangs must not freeze the page: reads give up after this, and the next poll
// tries again. Actions may wait longer, since a spawn answers once its agents run.
const READ_TIMEOUT_MS = 10000;
const ACTION_TIMEOUT_MS = 120000;
// The event kinds a stream may name (`event:` lines); unnamed messages count as well.
const EVENT_KINDS = [
  'process_started', 'process_stopped', 'process_reaped',
  'agent_started', 'agent_stopped', 'agent_failed', 'agent_restarted', 'agent_quarantined',
  'task_queued', 'task_started', 'task_finished', 'autoscale', 'gap',
];

const $ = (id) => document.getElementById(id);
const heartbeatTimeoutMs =
  Number(document.querySelector('meta[name="heartbeat-timeout-ms"]').content) || 5000;

const state = {
  pollMs: POLL_MS,
  timer: null,
  running: false, // a refresh is under way
  again: false, // another one was asked for meanwhile
  waitingForToken: false,
};

// ---- the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// One request: JSON in and out, the token when there is one. A 401 asks for a token; any
// refusal becomes an ApiError carrying the API's own message.
async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const resp = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    signal: AbortSignal.timeout(method === 'GET' ? READ_TIMEOUT_MS : ACTION_TIMEOUT_MS),
  });
  const data = await resp.json().catch(() => null);
  if (resp.ok) return data;
  const err = (data && data.error) || {};
  const message = err.message || `${method} ${path}: HTTP ${resp.status}`;
  // A refusal of a token the page has since replaced (a request still in flight when the
  // user entered a new one) says nothing about the new one.
  if (resp.status === 401 && token() === t) askForToken(message);
  throw new ApiError(resp.status, err.code || 'http_error', message);
}

// ---- refresh: the one entry point, for the timer and for stream events alike ----------

async function refresh() {
  if (state.waitingForToken) return;
  if (state.running) {
    state.again = true;
    return;
  }
  state.running = true;
  try {
    const [pools, processes, agents, tasks] = await Promise.all([
      api('GET', '/pools'),
      api('GET', '/processes'),
      api('GET', '/agents'),
      api('GET', `/tasks?limit=${RECENT_TASKS}`),
    ]);
    renderPools(pools);
    renderWorkers(processes);
    renderAgents(agents);
    renderTasks(tasks);
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = 'true';
    if ($('notice').dataset.kind === 'load') hideNotice();
  } catch (e) {
    if (e.status !== 401) showNotice(`Cannot load: ${e.message}`, 'load');
  } finally {
    state.running = false;
  }
  if (state.again) {
    state.again = false;
    refresh();
  }
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(async () => {
    await refresh();
    schedule();
  }, state.pollMs);
}

function setMode(live) {
  state.pollMs = live ? STREAM_POLL_MS : POLL_MS;
  $('mode').textContent = live ? 'live (event stream)' : `polling every ${POLL_MS / 1000} s`;
  schedule();
}

// The event stream, when the master has one: its events trigger refreshes and the poll slows
// down. A master without it answers 404, which closes the EventSource for good: keep polling.
function connectEvents() {
  if (typeof EventSource === 'undefined') return;
  const events = new EventSource(`${API}/events`);
  events.onopen = () => setMode(true);
  events.onmessage = () => refresh();
  for (const kind of EVENT_KINDS) events.addEventListener(kind, () => refresh());
  events.onerror = () => {
    if (events.readyState === EventSource.CLOSED) events.close();
    setMode(false);
  };
}

// ---- rendering -------------------------------------------------------------------------

// An element with `text` and attributes; children appended as given.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('data-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  node.append(...children);
  return node;
}

const td = (text, cls) => el('td', { text: text === undefined || text === null ? '' : String(text), class: cls });
// Ids are UUIDv7: the start is the time, shared by neighbours; the end tells them apart.
const short = (id) => (id ? String(id).slice(-8) : '');
const badge = (value, kind, label) =>
  el('span', { class: `badge ${kind}-${value}`, text: label || value, 'data-status': value });
const actionButton = (action, id, label) =>
  el('button', { type: 'button', class: 'small danger', text: label, 'data-action': action, 'data-id': id });

function renderPools(pools) {
  const cards = pools.map((p) => {
    const used = p.used_capacity;
    const total = p.total_capacity;
    const fill = el('div', { class: 'fill' });
    fill.style.width = total ? `${Math.min(100, (100 * used) / total)}%` : '0%';
    const stat = (label, value, cls) => el('div', { class: 'stat' },
      el('span', { class: 'label', text: label }), el('span', { class: `value ${cls || ''}`, text: String(value) }));
    const scale = p.autoscale
      ? stat('desired', `${p.desired_agents} (${p.autoscale.min}–${p.autoscale.max})`, 'desired')
      : null;
    return el('article', { class: 'card', 'data-pool': p.pool_name },
      el('h3', {}, el('span', { class: 'pool-name', text: p.pool_name }), badge(p.state, 'state'),
        badge(p.circuit, 'circuit', `circuit ${p.circuit}`)),
      el('div', { class: 'bar', title: `${used} of ${total} slots used` }, fill),
      el('div', { class: 'stats' },
        stat('agents', p.agent_count, 'agents'),
        stat('workers', p.process_count, 'workers'),
        stat('capacity', `${used}/${total}`, 'capacity'),
        stat('utilization', `${Math.round(p.utilization * 100)}%`, 'utilization'),
        stat('queued tasks', p.queued_tasks, 'queued'),
        stat('running tasks', p.running_tasks, 'running'),
        stat('pending spawns', p.pending_spawns, 'pending'),
        ...(scale ? [scale] : [])));
  });
  $('pools').replaceChildren(...cards);
  fillPoolSelect(pools.map((p) => p.pool_name));
}

// The spawn form's pool list, keeping what the user chose.
function fillPoolSelect(names) {
  const select = $('spawn-pool');
  const current = [...select.options].map((o) => o.value);
  if (current.join('\n') === names.join('\n')) return;
  const chosen = select.value;
  select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
  if (names.includes(chosen)) select.value = chosen;
}

function heartbeatCell(w) {
  const ageMs = Date.now() - Date.parse(w.last_heartbeat);
  const stale = ageMs > heartbeatTimeoutMs;
  const text = Number.isFinite(ageMs) ? `${(Math.max(0, ageMs) / 1000).toFixed(1)} s` : '?';
  return td(text, stale ? 'stale' : 'fresh');
}

function renderWorkers(workers) {
  const rows = workers.slice(0, MAX_ROWS).map((w) => el('tr', { 'data-process': w.process_id },
    td(short(w.process_id), 'mono'), td(w.pool_name), td(w.pid),
    td(`${w.agent_count}/${w.max_agents}`), heartbeatCell(w),
    td(`${(w.rss_bytes / 1048576).toFixed(1)} MiB`), td(`${w.cpu_percent.toFixed(1)}%`),
    el('td', {}, badge(w.status, 'process')),
    el('td', {}, w.status === 'running' ? actionButton('drain', w.process_id, 'Drain') : '')));
  $('workers').replaceChildren(...rows);
  $('workers-count').textContent = countText(workers.length);
}

function renderAgents(agents) {
  const rows = agents.slice(0, MAX_ROWS).map((a) => el('tr', { 'data-agent': a.agent_id },
    td(short(a.agent_id), 'mono'), td(a.name), td(a.pool_name),
    el('td', {}, badge(a.status, 'agent')), td(a.restarts),
    td(short(a.current_task), 'mono'), td(a.error, 'error'),
    el('td', {}, a.status === 'stopped' ? '' : actionButton('terminate', a.agent_id, 'Terminate'))));
  $('agents').replaceChildren(...rows);
  $('agents-count').textContent = countText(agents.length);
}

function renderTasks(tasks) {
  const open = (t) => t.status === 'queued' || t.status === 'running';
  const rows = tasks.map((t) => el('tr', { 'data-task': t.task_id },
    td(short(t.task_id), 'mono'), td(t.pool_name), el('td', {}, badge(t.status, 'task')),
    td(t.attempts), td(short(t.agent_id), 'mono'),
    td(new Date(t.created_at).toLocaleTimeString()), td(t.error, 'error'),
    el('td', {}, open(t) ? actionButton('cancel', t.task_id, 'Cancel') : '')));
  $('tasks').replaceChildren(...rows);
}

const countText = (n) => (n > MAX_ROWS ? `(first ${MAX_ROWS} of ${n})` : `(${n})`);

// ---- notices, confirmation, token ------------------------------------------------------

function showNotice(text, kind) {
  $('notice-text').textContent = text;
  $('notice').dataset.kind = kind;
  $('notice').hidden = false;
}

function hideNotice() {
  $('notice').hidden = true;
  $('notice').dataset.kind = '';
}

// An in-page confirmation, resolving to true when confirmed.
function confirmAction(text) {
  const dialog = $('confirm-dialog');
  $('confirm-text').textContent = text;
  return new Promise((resolve) => {
    const done = (ok) => {
      $('confirm-ok').onclick = null;
      $('confirm-cancel').onclick = null;
      dialog.oncancel = null;
      if (dialog.open) dialog.close();
      resolve(ok);
    };
    $('confirm-ok').onclick = () => done(true);
    $('confirm-cancel').onclick = () => done(false);
    // Escape answers "no". Not `onclose`: the close event of an earlier question arrives
    // later, and would answer this one.
    dialog.oncancel = (event) => {
      event.preventDefault();
      done(false);
    };
    dialog.showModal();
  });
}

function askForToken(reason) {
  if (state.waitingForToken) return;
  state.waitingForToken = true;
  sessionStorage.removeItem(TOKEN_KEY);
  $('token-reason').textContent = reason;
  $('token-form').hidden = false;
  $('content').hidden = true;
  $('token-input').focus();
}

function useToken(event) {
  event.preventDefault();
  const value = $('token-input').value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $('token-input').value = '';
  $('token-form').hidden = true;
  $('content').hidden = false;
  state.waitingForToken = false;
  refresh();
}

// ---- actions -----------------------------------------------------------------------------

const ACTIONS = {
  terminate: {
    ask: (id) => `Terminate agent ${short(id)}?`,
    run: (id) => api('DELETE', `/agents/${encodeURIComponent(id)}`),
  },
  drain: {
    ask: (id) => `Drain worker ${short(id)}? Its agents move to other workers and it stops.`,
    run: (id) => api('DELETE', `/processes/${encodeURIComponent(id)}`),
  },
  cancel: {
    ask: (id) => `Cancel task ${short(id)}?`,
    run: (id) => api('DELETE', `/tasks/${encodeURIComponent(id)}`),
  },
};

// Runs an action and shows the API's message if it is refused.
async function perform(what, run) {
  try {
    await run();
    hideNotice();
  } catch (e) {
    if (e.status !== 401) showNotice(`${what} refused: ${e.message}`, 'action');
  }
  refresh();
}

async function onTableClick(event) {
  const button = event.target.closest('button[data-action]');
  if (!button) return;
  const action = ACTIONS[button.dataset.action];
  const id = button.dataset.id;
  if (!(await confirmAction(action.ask(id)))) return;
  await perform(button.textContent, () => action.run(id));
}

async function onSpawn(event) {
  event.preventDefault();
  const count = Number($('spawn-count').value);
  const pool = $('spawn-pool').value;
  const button = $('spawn-button');
  button.disabled = true;
  // Spawned agents show up while the request still waits for them to run.
  const poll = setInterval(refresh, POLL_MS);
  try {
    await perform('Spawn', () => api('POST', `/pools/${encodeURIComponent(pool)}/agents`, { count }));
  } finally {
    clearInterval(poll);
    button.disabled = false;
  }
}

function start() {
  $('spawn-form').addEventListener('submit', onSpawn);
  $('token-form').addEventListener('submit', useToken);
  $('notice-close').addEventListener('click', hideNotice);
  for (const id of ['workers', 'agents', 'tasks']) $(id).addEventListener('click', onTableClick);
  setMode(false);
  refresh();
  connectEvents();
}

start();
