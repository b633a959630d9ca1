// The compliance console: plain ES modules, no build step. Every screen is built with DOM calls
// (text is always set as text, never parsed as HTML) from the public JSON API's answers.

import { ApiError, call, currentSession, download, may, signIn, signOut } from './api.js';

// ---------------------------------------------------------------------------------------------
// DOM helpers

/** Creates an element: `h('button', {type: 'button', onclick}, 'Text', child…)`. */
function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name.startsWith('on')) {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

let fieldCounter = 0;

/** A labelled form control. */
function field(label, control, hint) {
  fieldCounter += 1;
  const id = control.id || `f${fieldCounter}`;
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute('aria-describedby', hintId);
    parts.push(h('span', { id: hintId, class: 'hint' }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

function select(name, options, value) {
  return h(
    'select',
    { name },
    options.map(([optionValue, text]) =>
      h('option', { value: optionValue, selected: optionValue === value }, text),
    ),
  );
}

/** A table with a caption and column headers; `rows` are arrays of cells (text or nodes). */
function table(caption, headers, rows, rowClass) {
  return h(
    'div',
    // Focusable, so that a table wider than the screen scrolls from the keyboard too.
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h(
      'table',
      {},
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headers.map((text) => h('th', { scope: 'col' }, text)))),
      h(
        'tbody',
        {},
        rows.length === 0
          ? h('tr', {}, h('td', { colspan: headers.length }, 'None.'))
          : rows.map((cells, index) =>
              h('tr', { class: rowClass ? rowClass(index) : null }, cells.map((cell) => h('td', {}, cell))),
            ),
      ),
    ),
  );
}

function facts(pairs, kind = 'facts') {
  return h(
    'dl',
    { class: kind },
    pairs.filter(([, value]) => value !== undefined).flatMap(([term, value]) => [h('dt', {}, term), h('dd', {}, value ?? '—')]),
  );
}

// One date format everywhere, in what is shown and in what is typed: ISO 8601, UTC
// (`2026-12-06 14:03 UTC`; days as `2026-12-06`). A browser's own date picker follows the
// browser's locale instead, so day fields are text fields in this format.
function when(text) {
  return text ? `${new Date(text).toISOString().slice(0, 16).replace('T', ' ')} UTC` : '—';
}

/** The day of a time, `YYYY-MM-DD` (UTC). */
function day(text) {
  return text ? new Date(text).toISOString().slice(0, 10) : '—';
}

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** Whether `value` is a real day in `YYYY-MM-DD` form. */
function isDay(value) {
  return DAY_PATTERN.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`))
    && new Date(`${value}T00:00:00Z`).toISOString().slice(0, 10) === value;
}

/**
 * Whether the day fields `names` of `inputs` hold days (an empty one passes when `optional`);
 * the first that does not is marked with its error.
 */
function daysValid(inputs, names, optional = false) {
  for (const name of names) {
    const value = inputs[name].value.trim();
    if ((value || !optional) && !isDay(value)) {
      fieldError(inputs[name], `${name === 'from' ? 'From' : 'To'} must be a day written as YYYY-MM-DD.`);
      return false;
    }
  }
  return true;
}

/** A day field: text in the console's one date format. */
function dayInput(name, value = '') {
  return h('input', { name, value, inputmode: 'numeric', autocomplete: 'off', spellcheck: 'false', placeholder: 'YYYY-MM-DD', maxlength: '10' });
}

/**
 * Marks a form control invalid with a message tied to it (`aria-invalid`, and the message in
 * its `aria-describedby`), and announces the message; focus moves to the control.
 */
function fieldError(control, message) {
  const id = `${control.id}-error`;
  let note = document.getElementById(id);
  if (!note) {
    note = h('span', { id, class: 'field-error' });
    control.closest('.field, fieldset')?.append(note);
  }
  note.textContent = message;
  control.setAttribute('aria-invalid', 'true');
  const described = (control.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
  if (!described.includes(id)) control.setAttribute('aria-describedby', [...described, id].join(' '));
  announce(`Please check the form: ${message}`, 'error');
  control.focus();
}

/** Clears the errors `fieldError` tied to the controls of `form`. */
function clearFieldErrors(form) {
  for (const control of form.querySelectorAll('[aria-invalid="true"]')) {
    const id = `${control.id}-error`;
    control.removeAttribute('aria-invalid');
    const described = (control.getAttribute('aria-describedby') || '').split(' ').filter((part) => part && part !== id);
    if (described.length) control.setAttribute('aria-describedby', described.join(' '));
    else control.removeAttribute('aria-describedby');
    document.getElementById(id)?.remove();
  }
}

/**
 * `attempt`, for a form: an error the API answers about what was typed (400, 422) is also tied
 * to `control`.
 */
async function attemptFor(control, work) {
  try {
    return await work();
  } catch (error) {
    if (error instanceof ApiError && (error.status === 400 || error.status === 422) && control) {
      fieldError(control, error.problem?.detail || error.message);
      announce(error.message, 'error');
      return undefined;
    }
    return report(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Status messages and errors

const statusBox = () => document.getElementById('status');

function announce(text, kind = 'info') {
  const box = statusBox();
  box.className = `status ${kind}`;
  box.textContent = text;
}

function clearStatus() {
  const box = statusBox();
  box.className = 'status';
  box.textContent = '';
}

/** Shows an error in words; a lost session returns to sign-in. Rethrows what is not the API's. */
function report(error) {
  if (error instanceof ApiError) {
    if (error.status === 401 && currentSession()) {
      signOut();
      render();
    }
    announce(error.message, 'error');
    return undefined;
  }
  announce('Something went wrong in the console. Reload the page and try again.', 'error');
  throw error;
}

/** Runs an API action, showing its error in words (`report`). */
async function attempt(work) {
  try {
    return await work();
  } catch (error) {
    return report(error);
  }
}

// ---------------------------------------------------------------------------------------------
// Layout, navigation

const SECTIONS = [
  { hash: '#/requests', label: 'Requests', allowed: () => may('requests.manage') },
  { hash: '#/subjects', label: 'Subjects', allowed: () => may('subjects.export') },
  { hash: '#/audit', label: 'Audit log', allowed: () => may('audit.read') },
  { hash: '#/consents', label: 'Consent trends', allowed: () => may('audit.read') },
  { hash: '#/insights', label: 'Insights', allowed: () => may('insights.query') },
  { hash: '#/policy', label: 'Policy', allowed: () => may('policy.read') },
];

function renderChrome() {
  const session = currentSession();
  const nav = document.getElementById('nav');
  const sessionBox = document.getElementById('session');
  if (!session) {
    nav.replaceChildren();
    nav.hidden = true;
    sessionBox.hidden = true;
    return;
  }
  // The links are built once per session and only marked afterwards: rebuilding them would
  // take keyboard focus away from a link while someone is on it.
  const sections = SECTIONS.filter((s) => s.allowed());
  const built = [...nav.querySelectorAll('a')].map((a) => a.getAttribute('href'));
  if (built.join() !== sections.map((s) => s.hash).join()) {
    nav.replaceChildren(...sections.map((section) => h('a', { href: section.hash }, section.label)));
  }
  const current = `#/${location.hash.split('/')[1] || ''}`;
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === current) {
      link.setAttribute('aria-current', 'page');
    } else {
      link.removeAttribute('aria-current');
    }
  }
  nav.hidden = false;
  sessionBox.hidden = false;
  document.getElementById('session-role').textContent = `Role: ${session.role}`;
}

/** Replaces the main area with a view, titles the page and moves focus to its heading. */
function show(title, ...content) {
  const main = document.getElementById('main');
  const heading = h('h1', { tabindex: '-1' }, title);
  main.replaceChildren(heading, ...content.flat().filter((part) => part !== null && part !== undefined));
  document.title = `${title} — Custodia console`;
  heading.focus();
}

/**
 * `show`, for a view that fetches before it shows: it shows nothing if the address changed in
 * the meantime (a slow answer for an earlier screen never replaces a later one).
 */
function view() {
  const hash = location.hash;
  return (title, ...content) => {
    if (location.hash === hash) {
      show(title, ...content);
    }
  };
}

async function render() {
  renderChrome();
  const session = currentSession();
  if (!session) {
    renderSignIn();
    return;
  }
  const [, section, ...rest] = location.hash.split('/');
  const id = rest.length ? decodeURIComponent(rest.join('/')) : null;
  const allowed = SECTIONS.filter((s) => s.allowed());
  switch (section) {
    case 'requests':
      if (may('requests.manage')) return id ? renderRequest(id) : renderRequests();
      break;
    case 'subjects':
      if (may('subjects.export')) return id ? renderSubject(id) : renderSubjectSearch();
      break;
    case 'audit':
      if (may('audit.read')) return renderAudit();
      break;
    case 'policy':
      if (may('policy.read')) return renderPolicy();
      break;
    case 'consents':
      if (may('audit.read')) return renderConsentTrends();
      break;
    case 'insights':
      if (may('insights.query')) return renderInsights();
      break;
    default:
      break;
  }
  if (allowed.length > 0) {
    location.hash = allowed[0].hash;
    return;
  }
  show('Nothing to show', h('p', {}, `The role ${session.role} has nothing to do in this console.`));
}

// ---------------------------------------------------------------------------------------------
// Sign in

function renderSignIn() {
  const key = h('input', { type: 'password', name: 'api_key', autocomplete: 'off', required: true, spellcheck: 'false' });
  const form = h(
    'form',
    {
      class: 'stack',
      onsubmit: async (event) => {
        event.preventDefault();
        clearStatus();
        const value = key.value.trim();
        clearFieldErrors(form);
        if (!value) {
          fieldError(key, 'paste your API key to sign in.');
          return;
        }
        const session = await attempt(() => signIn(value));
        key.value = '';
        if (session) {
          announce(`Signed in as ${session.role}.`);
          if (!location.hash || location.hash === '#/') {
            location.hash = '#/';
          }
          render();
        }
      },
    },
    field('API key', key, 'Your key is exchanged for a session that lasts 15 minutes; it is kept only in this tab.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Sign in')),
  );
  show('Sign in', form);
}

document.getElementById('sign-out').addEventListener('click', () => {
  signOut();
  announce('Signed out.');
  location.hash = '#/';
  render();
});

// ---------------------------------------------------------------------------------------------
// Requests

const KINDS = [
  ['access', 'Access (Art. 15)'],
  ['portability', 'Portability (Art. 20)'],
  ['erasure', 'Erasure (Art. 17)'],
  ['restriction', 'Restriction (Art. 18)'],
  ['objection', 'Objection (Art. 21)'],
  ['rectification', 'Rectification (Art. 16)'],
];
const kindLabel = (kind) => (KINDS.find(([value]) => value === kind) || [kind, kind])[1];

/** Who a request names, as text: the subject id, the e-mail address, a hash, or `Erased`. */
function personOf(request) {
  const named = request.subject || {};
  return named.subject_id
    ?? named.email
    ?? (named.email_sha256 && `SHA-256 of an e-mail address: ${named.email_sha256}`)
    ?? (named.subject_id_sha256 && `SHA-256 of a subject id: ${named.subject_id_sha256}`)
    ?? 'Erased';
}

/** What an execution did, in words (the API's `result`). */
function resultFacts(result) {
  const counts = (map) => Object.entries(map || {})
    .filter(([, n]) => n > 0)
    .map(([kind, n]) => `${n} ${kind.replaceAll('_', ' ')}`)
    .join(', ') || 'nothing';
  return [
    ['Person found', result.subject_found === false ? 'No: nobody matched, nothing was held' : 'Yes'],
    ['Closed by erasure', result.closed_by_erasure ? h('code', {}, result.closed_by_erasure) : undefined],
    ['Export', result.export ? `ready to download (${result.export.format === 'csv' ? 'CSV, zip' : 'JSON'})` : undefined],
    ['Erasure id', result.erasure_id ? h('code', {}, result.erasure_id) : undefined],
    ['Deleted', result.erased ? counts(result.erased) : undefined],
    ['Processing restricted', result.restricted ? (result.changed ? 'Yes, from now' : 'Yes, already') : undefined],
    ['Objected to', result.objected ? result.objected.join(', ') || '—' : undefined],
    ['Rectified', result.rectified
      ? [...(result.rectified.identifiers || []), ...(result.rectified.traits || [])].join(', ') || 'nothing'
      : undefined],
  ];
}

/** A completed request answered after its deadline. */
const completedLate = (request) => request.status === 'completed' && request.completed_at && Date.parse(request.completed_at) > Date.parse(request.due_at);

/** The deadline rule of a regulation, in words. */
const DEADLINE_RULES = {
  gdpr: 'GDPR Art. 12(3): one month from receipt, extendable by two further months',
  ccpa: 'CCPA § 1798.130: 45 days from receipt, extendable once by 45 days',
};

function daysLeft(request) {
  if (completedLate(request)) {
    return h('span', { class: 'badge bad' }, 'Completed late');
  }
  if (request.status === 'completed' || request.status === 'rejected') {
    return '—';
  }
  if (request.overdue) {
    return h('span', { class: 'badge bad' }, `Overdue by ${-request.days_left} day${request.days_left === -1 ? '' : 's'}`);
  }
  return `${request.days_left} day${request.days_left === 1 ? '' : 's'}`;
}

async function renderRequests(filters = {}) {
  const display = view();
  // Open requests unless another status is chosen ('' is any status).
  const chosen = filters.status ?? 'open';
  const status = select('status', [['open', 'Open'], ['', 'Any status'], ['received', 'Received'], ['verified', 'Verified'], ['in_progress', 'In progress'], ['completed', 'Completed'], ['rejected', 'Rejected']], chosen);
  const overdue = h('input', { type: 'checkbox', name: 'overdue', checked: filters.overdue });
  const filterForm = h(
    'form',
    {
      class: 'row',
      'aria-label': 'Filter requests',
      onsubmit: (event) => {
        event.preventDefault();
        renderRequests({ status: status.value, overdue: overdue.checked });
      },
    },
    field('Status', status),
    h('div', { class: 'field' }, h('label', {}, overdue, ' Overdue only')),
    h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
  );
  const query = new URLSearchParams({ limit: '100' });
  if (chosen) query.set('status', chosen);
  if (filters.overdue) query.set('overdue', 'true');
  const [page, policy] = await Promise.all([
    attempt(() => call('GET', `/v1/requests?${query}`)),
    // The purposes an objection can name; without the policy the form asks for ids instead.
    call('GET', '/v1/policy').catch(() => null),
  ]);
  const requests = page ? page.requests : [];
  const rows = requests.map((request) => [
    // Each link's name is its own: two requests of one kind for one person differ by the day
    // they came and their id.
    h('a', {
      href: `#/requests/${encodeURIComponent(request.id)}`,
      'aria-label': `${kindLabel(request.type)}: ${personOf(request)}, received ${day(request.received_at)} (request ${request.id.slice(-8)})`,
    }, kindLabel(request.type)),
    personOf(request),
    request.regulation.toUpperCase(),
    request.status.replace('_', ' '),
    when(request.received_at),
    when(request.due_at),
    daysLeft(request),
  ]);
  display(
    'Requests',
    h('p', { class: 'hint' }, 'Data-subject requests, soonest deadline first; open ones unless you choose another status. Overdue ones are highlighted.'),
    filterForm,
    table('Request queue', ['Type', 'Person', 'Regulation', 'Status', 'Received', 'Due', 'Days left'], rows, (index) => (requests[index].overdue ? 'overdue' : null)),
    newRequestForm(policy ? policy.purposes.map((purpose) => purpose.id) : null),
  );
}

/** Today's date (UTC) as `YYYY-MM-DD`, the value of a date input. */
const today = () => new Date().toISOString().slice(0, 10);

/**
 * The form that records a request: who, under which law, when it arrived (a letter may have
 * arrived days ago: the deadline counts from then), and what an objection or a rectification
 * asks for.
 */
function newRequestForm(purposeIds) {
  const kind = select('type', KINDS, 'access');
  const regulation = select('regulation', [['gdpr', 'GDPR'], ['ccpa', 'CCPA']], 'gdpr');
  const by = select('by', [['subject_id', 'Subject id'], ['email', 'E-mail address']], 'subject_id');
  const who = h('input', { name: 'who', required: true, autocomplete: 'off' });
  const receivedOn = dayInput('received_on', today());
  // Objection: the purposes objected to.
  const purposeBoxes = (purposeIds || []).map((id) => h('input', { type: 'checkbox', name: 'purpose', value: id, id: `purpose-${id.replaceAll('.', '-')}` }));
  const purposeText = h('input', { name: 'purposes', autocomplete: 'off' });
  const purposes = h(
    'fieldset',
    { class: 'stack', hidden: true },
    h('legend', {}, 'Purposes objected to'),
    purposeIds
      ? h('div', { class: 'row' }, purposeBoxes.map((box) => h('label', {}, box, ` ${box.value}`)))
      : field('Purpose ids, separated by commas', purposeText),
  );
  // Rectification: the corrected values.
  const newEmail = h('input', { type: 'email', name: 'new_email', autocomplete: 'off' });
  const newPhone = h('input', { type: 'tel', name: 'new_phone', autocomplete: 'off' });
  const traits = h('textarea', { name: 'traits', rows: '3', autocomplete: 'off', spellcheck: 'false' });
  const changes = h(
    'fieldset',
    { class: 'stack', hidden: true },
    h('legend', {}, 'Values to rectify'),
    h('div', { class: 'row' }, field('Correct e-mail address', newEmail), field('Correct phone number', newPhone)),
    field('Correct traits', traits, 'One per line: name = value (for example: country = AT).'),
  );
  const showFor = () => {
    purposes.hidden = kind.value !== 'objection';
    changes.hidden = kind.value !== 'rectification';
  };
  kind.addEventListener('change', showFor);
  const requestBody = () => {
    const body = { type: kind.value, regulation: regulation.value };
    // Today: the server's clock (the time of day counts). An earlier day: from its start.
    if (receivedOn.value.trim() !== today()) {
      body.received_at = `${receivedOn.value.trim()}T00:00:00Z`;
    }
    body[by.value] = who.value.trim();
    if (kind.value === 'objection') {
      body.purposes = purposeIds
        ? purposeBoxes.filter((box) => box.checked).map((box) => box.value)
        : purposeText.value.split(',').map((id) => id.trim()).filter(Boolean);
    }
    if (kind.value === 'rectification') {
      const identifiers = {};
      if (newEmail.value.trim()) identifiers.email = newEmail.value.trim();
      if (newPhone.value.trim()) identifiers.phone = newPhone.value.trim();
      const traitValues = {};
      for (const line of traits.value.split('\n')) {
        const at = line.indexOf('=');
        if (at > 0) traitValues[line.slice(0, at).trim()] = line.slice(at + 1).trim();
      }
      body.changes = {};
      if (Object.keys(identifiers).length) body.changes.identifiers = identifiers;
      if (Object.keys(traitValues).length) body.changes.traits = traitValues;
    }
    return body;
  };
  // What can be checked before asking the API, each error tied to its field.
  const check = () => {
    if (!who.value.trim()) {
      fieldError(who, 'name the person: their subject id or e-mail address.');
      return false;
    }
    if (!isDay(receivedOn.value.trim())) {
      fieldError(receivedOn, 'give the day the request arrived, written as YYYY-MM-DD.');
      return false;
    }
    if (receivedOn.value.trim() > today()) {
      fieldError(receivedOn, 'the day the request arrived cannot be in the future.');
      return false;
    }
    if (kind.value === 'objection' && purposeIds && !purposeBoxes.some((box) => box.checked)) {
      fieldError(purposeBoxes[0], 'choose at least one purpose objected to.');
      return false;
    }
    return true;
  };
  const form = h(
      'form',
      {
        class: 'stack',
        onsubmit: async (event) => {
          event.preventDefault();
          clearStatus();
          clearFieldErrors(form);
          if (!check()) return;
          const created = await attemptFor(who, () => call('POST', '/v1/requests', requestBody()));
          if (created) {
            // Shown here rather than through a hash change, which clears the status line: the
            // confirmation stays on the request's screen.
            history.pushState(null, '', `#/requests/${encodeURIComponent(created.id)}`);
            await renderRequest(created.id);
            announce(`Request recorded; due ${when(created.due_at)}.`);
          }
        },
      },
      h('div', { class: 'row' }, field('Type', kind), field('Regulation', regulation)),
      h('div', { class: 'row' }, field('Identify the person by', by), field('Value', who)),
      field('Received on', receivedOn, 'The day the request arrived, YYYY-MM-DD (UTC); its deadline counts from then (from the start of an earlier day, from now for today).'),
      purposes,
      changes,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Record request')),
    );
  return h(
    'section',
    { 'aria-labelledby': 'new-request' },
    h('h2', { id: 'new-request' }, 'Record a new request'),
    form,
  );
}

async function renderRequest(id) {
  const display = view();
  const request = await attempt(() => call('GET', `/v1/requests/${encodeURIComponent(id)}`));
  if (!request) {
    display('Request', h('p', {}, h('a', { href: '#/requests' }, 'Back to the queue')));
    return;
  }
  const named = request.subject || {};
  const subject = named.subject_id
    ? h('a', { href: `#/subjects/${encodeURIComponent(named.subject_id)}` }, named.subject_id)
    : personOf(request);
  const open = request.status !== 'completed' && request.status !== 'rejected';
  const act = async (path, body, done, control = null) => {
    clearStatus();
    const updated = await attemptFor(control, () => call('POST', `/v1/requests/${encodeURIComponent(id)}/${path}`, body));
    if (updated) {
      await renderRequest(id);
      announce(done);
    } else if (path === 'execute' && currentSession()) {
      // A failed execution has still changed the request (it stays in progress): show it as it
      // is now, keeping the error. Other refused steps changed nothing, and keep what was typed.
      const error = statusBox().textContent;
      await renderRequest(id);
      announce(error, 'error');
    }
  };
  const reason = (name) => h('input', { name, autocomplete: 'off' });
  const extendReason = reason('extend_reason');
  const rejectReason = reason('reject_reason');
  const actions = [];
  if (open && request.status === 'received') {
    actions.push(h('button', { type: 'button', onclick: () => act('verify', {}, 'Identity verified.') }, 'Mark identity verified'));
  }
  if (open && request.status !== 'received') {
    const execute = request.type === 'erasure'
      ? async () => confirmErasure(named.subject_id ?? named.email ?? request.id, async () => {
        clearStatus();
        const executed = await attempt(() => call('POST', `/v1/requests/${encodeURIComponent(id)}/execute`, {}));
        if (!executed) {
          await renderRequest(id);
          return;
        }
        const result = executed.result || {};
        if (!executed.erasure_receipt) {
          await renderRequest(id);
          announce(result.subject_found === false ? 'Request executed: nobody matched, nothing was erased.' : 'Request executed.');
          return;
        }
        showReceipt(named.subject_id ?? named.email ?? 'The person', {
          id: result.erasure_id,
          erased_at: executed.completed_at,
          counts: result.erased,
          held: result.held,
          receipt: executed.erasure_receipt,
        }, id);
      }, await requestErasurePreview(named))
      : () => act('execute', {}, 'Request executed.');
    actions.push(h('button', { type: 'button', onclick: execute }, 'Execute'));
  }
  const forms = [];
  if (open && !request.extended) {
    forms.push(
      h(
        'form',
        {
          class: 'row',
          'aria-label': 'Extend the deadline',
          onsubmit: (event) => {
            event.preventDefault();
            clearFieldErrors(event.target);
            if (!extendReason.value.trim()) {
              fieldError(extendReason, 'give the reason for extending (it is recorded and told to the person).');
              return;
            }
            act('extend', { reason: extendReason.value.trim() }, 'Deadline extended.', extendReason);
          },
        },
        field('Reason for extending', extendReason),
        h('button', { type: 'submit', class: 'secondary' }, 'Extend deadline'),
      ),
    );
  }
  if (open) {
    forms.push(
      h(
        'form',
        {
          class: 'row',
          'aria-label': 'Reject the request',
          onsubmit: (event) => {
            event.preventDefault();
            clearFieldErrors(event.target);
            if (!rejectReason.value.trim()) {
              fieldError(rejectReason, 'give the reason for rejecting (it is recorded and told to the person).');
              return;
            }
            act('reject', { reason: rejectReason.value.trim() }, 'Request rejected.', rejectReason);
          },
        },
        field('Reason for rejecting', rejectReason),
        h('button', { type: 'submit', class: 'danger' }, 'Reject'),
      ),
    );
  }
  const result = request.result
    ? h('section', {}, h('h2', {}, 'Result'), h('div', { class: 'panel' }, facts(resultFacts(request.result), 'outcome')))
    : null;
  // An executed erasure keeps its signed receipt for 30 days, for the person.
  const receiptButton = request.type === 'erasure' && request.result && request.result.erasure_id && may('subjects.erase')
    ? h('button', {
      type: 'button',
      class: 'secondary',
      onclick: async () => {
        clearStatus();
        const kept = await attempt(() => call('GET', `/v1/requests/${encodeURIComponent(id)}/receipt`));
        if (kept) {
          showReceipt('The person', {
            id: request.result.erasure_id,
            erased_at: request.completed_at,
            counts: request.result.erased,
            held: request.result.held,
            receipt: kept.erasure_receipt,
            kept_until: kept.kept_until,
          }, id, false);
        }
      },
    }, 'Show the erasure receipt')
    : null;
  const exportPath = (format) => `/v1/requests/${encodeURIComponent(id)}/export?format=${format}`;
  const exportLink = request.result && request.result.export && may('subjects.export')
    ? h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', class: 'secondary', onclick: () => save(exportPath('json')) }, 'Download the export (JSON)'),
      h('button', { type: 'button', class: 'secondary', onclick: () => save(exportPath('csv')) }, 'Download the export (CSV, zip)'),
    )
    : null;
  display(
    `${request.type.charAt(0).toUpperCase()}${request.type.slice(1)} request`,
    h('p', {}, h('a', { href: '#/requests' }, 'Back to the queue')),
    h(
      'div',
      { class: `panel${request.overdue ? ' overdue' : ''}` },
      facts([
        ['Status', request.status.replace('_', ' ')],
        ['Regulation', request.regulation.toUpperCase()],
        ['Person', subject],
        ['Received', when(request.received_at)],
        ['Purposes objected to', request.type === 'objection' ? (request.purposes || []).join(', ') || '—' : undefined],
        ['Values to rectify', request.changes ? h('pre', { class: 'mono' }, JSON.stringify(request.changes, null, 2)) : undefined],
        ['Due', when(request.due_at)],
        ['Deadline rule', DEADLINE_RULES[request.regulation] || request.regulation],
        ['Days left', daysLeft(request)],
        ['Extended', request.extended ? `${when(request.extended.at)}: ${request.extended.reason}` : 'No'],
        ['Identity verified', request.verified_at ? when(request.verified_at) : 'Not yet'],
        ['Rejected', request.rejected ? `${when(request.rejected.at)}: ${request.rejected.reason}` : undefined],
        ['Completed', request.completed_at ? when(request.completed_at) : undefined],
      ]),
    ),
    actions.length ? h('div', { class: 'actions' }, actions) : null,
    forms,
    receiptButton,
    exportLink,
    result,
  );
}

// ---------------------------------------------------------------------------------------------
// Subjects

function renderSubjectSearch() {
  const by = select('by', [['subject_id', 'Subject id'], ['email', 'E-mail address']], 'subject_id');
  const value = h('input', { name: 'value', required: true, autocomplete: 'off', spellcheck: 'false' });
  const results = h('div', {});
  const form = h(
    'form',
    {
      class: 'stack',
      role: 'search',
      onsubmit: async (event) => {
        event.preventDefault();
        clearStatus();
        const text = value.value.trim();
        clearFieldErrors(form);
        if (!text) {
          fieldError(value, 'enter a subject id or an e-mail address.');
          return;
        }
        if (by.value === 'subject_id') {
          location.hash = `#/subjects/${encodeURIComponent(text)}`;
          return;
        }
        // The address goes in a request body, never in a URL.
        const found = await attempt(() => call('POST', '/v1/lookup/subjects', { email: text }));
        if (!found) return;
        if (found.subjects.length === 1) {
          location.hash = `#/subjects/${encodeURIComponent(found.subjects[0].subject_id)}`;
          return;
        }
        results.replaceChildren(
          h('h2', {}, 'People with this address'),
          h('ul', {}, found.subjects.map((s) => h('li', {}, h('a', { href: `#/subjects/${encodeURIComponent(s.subject_id)}` }, s.subject_id)))),
        );
      },
    },
    h('div', { class: 'row' }, field('Find by', by), field('Subject id or e-mail', value)),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Find')),
  );
  show('Subjects', h('p', { class: 'hint' }, 'Look a person up to see their consents, export their data, restrict processing or erase them.'), form, results);
}

/** Downloads an export through the API (the token goes in a header, never in a URL). */
async function save(path) {
  clearStatus();
  const file = await attempt(() => download(path));
  if (!file) return;
  const url = URL.createObjectURL(file.blob);
  const link = h('a', { href: url, download: file.name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  announce(`Downloaded ${file.name}.`);
}

/** The consent strings (IAB TCF, GPP) a statement was read from, each with its SHA-256. */
function consentStrings(strings) {
  if (!strings || !strings.length) return '—';
  const names = { tcf: 'TCF TC string', gpp: 'GPP string' };
  return h('ul', { class: 'plain' }, strings.map((s) => h('li', {},
    `${names[s.standard] || s.standard} `,
    h('code', { title: `SHA-256 ${s.sha256}` }, `${s.sha256.slice(0, 12)}…`))));
}

/** The notice a statement names, with the proof of the text shown: its language and SHA-256. */
function noticeProof(notice) {
  if (!notice) return '—';
  const name = `${notice.id} v${notice.version}${notice.language ? ` (${notice.language})` : ''}`;
  if (!notice.sha256) return name;
  return h('span', {}, name, h('br'), h('code', { class: 'hash', title: `SHA-256 of the text shown: ${notice.sha256}` }, `text ${notice.sha256.slice(0, 12)}…`));
}

/** The API's explanation in words, with its `code` quoting shown as quotation marks. */
const words = (text) => (text || '').replace(/`([^`]*)`/g, '“$1”');

/** A legal basis in effect or not, as a badge with its reason. */
function basisBadge(basis) {
  return basis.in_effect
    ? h('span', { class: 'badge good' }, 'In effect')
    : h('span', { class: 'badge bad' }, `Not in effect: ${(basis.reason || '').replaceAll('_', ' ')}`);
}

/** The person's identifiers: which ones they have, and their values only when revealed. */
function identifierList(subjectId, glance) {
  const section = h('div', { class: 'panel', 'aria-live': 'polite' });
  const fill = (current) => {
    const rows = current.identifiers.map((identifier) => [
      identifier.kind === 'email' ? 'E-mail address' : identifier.kind === 'phone' ? 'Phone number' : identifier.kind,
      current.identifiers_revealed ? h('span', { class: 'mono' }, identifier.value) : 'Held (hidden)',
    ]);
    const reveal = !current.identifiers_revealed && current.identifiers.length
      ? h('button', {
        type: 'button',
        class: 'secondary',
        onclick: async () => {
          clearStatus();
          const revealed = await attempt(() => call('GET', `/v1/subjects/${encodeURIComponent(subjectId)}?reveal=identifiers`));
          if (revealed) {
            fill(revealed);
            announce('Identifiers revealed; this is recorded in the audit log.');
          }
        },
      }, 'Reveal identifiers')
      : null;
    section.replaceChildren(
      rows.length ? facts(rows) : h('p', {}, 'No e-mail address or phone number is held.'),
      reveal ? h('p', { class: 'hint' }, 'Revealing them is recorded in the audit log.') : null,
      reveal ? h('div', { class: 'actions' }, reveal) : null,
    );
  };
  fill(glance);
  return section;
}

async function renderSubject(subjectId) {
  const display = view();
  const path = `/v1/subjects/${encodeURIComponent(subjectId)}`;
  const [glance, state, trail] = await Promise.all([
    attempt(() => call('GET', path)),
    call('GET', `${path}/consents`).catch(() => null),
    may('audit.read')
      ? call('GET', `/v1/audit?${new URLSearchParams({ subject_id: subjectId, limit: '100' })}`).catch(() => null)
      : null,
  ]);
  const back = h('p', {}, h('a', { href: '#/subjects' }, 'Find another person'));
  if (!glance || !state) {
    display(`Subject ${subjectId}`, back);
    return;
  }
  const basisOf = new Map(glance.legal_basis.map((basis) => [basis.purpose, basis]));
  // A statement's own status, and whether it has effect now (an objection to a parent, a
  // restriction or a later statement on a parent can take it away).
  const current = table(
    'Current consent, per purpose',
    ['Purpose', 'Status', 'Since', 'In effect now'],
    state.current.map((c) => {
      const basis = basisOf.get(c.purpose);
      return [
        c.purpose,
        h('span', { class: `badge ${c.status === 'granted' ? 'good' : 'bad'}` }, c.status),
        when(c.since),
        basis ? [basisBadge(basis), ' ', words(basis.why)] : '—',
      ];
    }),
  );
  const history = table(
    'Consent history, oldest first',
    ['Recorded', 'Purpose', 'Status', 'Notice', 'Source', 'Method', 'Read from'],
    (state.history || []).map((consent) => [
      when(consent.recorded_at),
      consent.purpose,
      consent.status,
      noticeProof(consent.notice),
      consent.source === 'gpc' ? 'browser signal' : consent.source || '—',
      consent.method === 'gpc' ? 'Global Privacy Control' : consent.method || '—',
      consentStrings(consent.consent_strings),
    ]),
  );
  const objections = table('Objections (Art. 21)', ['Purpose', 'Since'], state.objections.map((o) => [o.purpose, when(o.since)]));
  const bases = table(
    'Legal basis in effect, per purpose',
    ['Purpose', 'Legal basis', 'Now', 'Why', 'Since'],
    glance.legal_basis.map((basis) => [
      basis.purpose,
      basis.legal_basis.replaceAll('_', ' '),
      basisBadge(basis),
      words(basis.why),
      basis.since ? when(basis.since) : '—',
    ]),
  );
  const traits = table('Traits', ['Trait', 'Value'], Object.entries(glance.traits).map(([name, value]) => [name, String(value)]));
  const timeline = table(
    'Interactions, newest first',
    ['When', 'Type', 'Channel', 'Held for, until', 'Fields'],
    glance.timeline.map((item) => [
      when(item.occurred_at),
      item.type,
      item.channel,
      item.held_for.length
        ? h('ul', { class: 'plain' }, item.held_for.map((held) => h('li', {}, `${held.purpose} until ${day(held.until)}${held.legal_hold ? ' (legal hold: kept at erasure)' : ''}`)))
        : 'No purpose (deleted at the next retention run)',
      item.fields.join(', ') || '—',
    ]),
  );
  const actions = [
    h('button', { type: 'button', class: 'secondary', onclick: () => save(`${path}/export`) }, 'Export JSON'),
    h('button', { type: 'button', class: 'secondary', onclick: () => save(`${path}/export?format=csv`) }, 'Export CSV (zip)'),
    h('button', { type: 'button', class: 'secondary', onclick: () => save(`${path}/consents?format=iso27560`) }, 'Consent records (ISO 27560)'),
  ];
  if (may('requests.manage')) {
    actions.push(
      state.restricted
        ? h('button', { type: 'button', onclick: () => restriction(subjectId, 'DELETE') }, 'Lift restriction')
        : h('button', { type: 'button', onclick: () => restriction(subjectId, 'POST') }, 'Restrict processing'),
    );
  }
  if (may('subjects.erase')) {
    actions.push(h('button', { type: 'button', class: 'danger', onclick: () => confirmErase(subjectId) }, 'Erase…'));
  }
  display(
    `Subject ${subjectId}`,
    back,
    h('div', { class: 'panel' }, facts([
      ['Processing', state.restricted ? h('span', { class: 'badge bad' }, 'Restricted (Art. 18)') : 'Not restricted'],
      ['First seen', when(glance.created_at)],
      ['Last changed', when(glance.updated_at)],
      ['Interactions held', String(glance.interactions)],
    ])),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions on this person' }, actions),
    h('h2', {}, 'Identifiers'),
    identifierList(subjectId, glance),
    h('h2', {}, 'Traits'),
    traits,
    h('h2', {}, 'Legal basis'),
    h('p', { class: 'hint' }, 'What the policy engine decides for each purpose now: a restriction, an objection (to the purpose or a parent) or the latest consent statement (on the purpose or a parent) decides.'),
    bases,
    h('h2', {}, 'Consents'),
    current,
    h('h3', {}, 'History'),
    history,
    h('h3', {}, 'Objections'),
    objections,
    h('h2', {}, 'Interactions'),
    h('p', { class: 'hint' }, `The newest ${glance.timeline.length} of ${glance.interactions}, with the purposes each is still held for and when retention ends for each. Their content is in the export.`),
    timeline,
    trail ? accessTrail(trail.entries) : null,
  );
}

/**
 * Who accessed a person, from the audit log: the newest 50 entries naming them, without the
 * console's own background listings (`requests.list`, which name everyone in the queue).
 */
function accessTrail(entries) {
  const shown = entries.filter((e) => e.action !== 'requests.list').slice(0, 50);
  return [
    h('h2', {}, 'Who accessed this person'),
    h('p', { class: 'hint' }, 'From the audit log, newest first: every read, write and refusal naming this person.'),
    table(
      'Access to this person',
      ['When', 'Who', 'Action', 'Purposes', 'Decision'],
      shown.map((e) => [
        when(e.at),
        actorOf(e),
        e.action,
        e.purposes.join(', ') || '—',
        e.decision === 'deny' ? h('span', { class: 'badge bad' }, `denied: ${e.reason || ''}`) : 'allowed',
      ]),
    ),
  ];
}

/** Who acted, in words: the key's name and role, or the command line / the server itself. */
function actorOf(entry) {
  if (entry.actor_name) return `${entry.actor_name} (${entry.role || 'no role'})`;
  if (entry.actor_key_id) return `key ${entry.actor_key_id} (${entry.role || 'no role'})`;
  return entry.role === 'system' ? 'the server (scheduled)' : 'command line (operator)';
}

async function restriction(subjectId, method) {
  clearStatus();
  const path = `/v1/subjects/${encodeURIComponent(subjectId)}/restriction`;
  const done = await attempt(() => call(method, path, method === 'POST' ? {} : undefined));
  if (done) {
    await renderSubject(subjectId);
    announce(method === 'POST' ? 'Processing restricted.' : 'Restriction lifted.');
  }
}

/** Keeps Tab and Shift+Tab inside a modal dialog, cycling through its controls. */
function trapFocus(dialog) {
  dialog.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const focusable = [...dialog.querySelectorAll('button, input, select, textarea, a[href], [tabindex="0"]')]
      .filter((element) => !element.disabled && element.offsetParent !== null);
    if (focusable.length === 0) return;
    const first = focusable[0];
    const last = focusable[focusable.length - 1];
    if (event.shiftKey && document.activeElement === first) {
      event.preventDefault();
      last.focus();
    } else if (!event.shiftKey && document.activeElement === last) {
      event.preventDefault();
      first.focus();
    }
  });
}

/** What an erasure will do, from `GET /v1/subjects/{id}/erasure-preview`, in words. */
function previewParts(preview) {
  if (!preview) return [];
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const parts = [
    h('h3', {}, 'What will be erased'),
    facts([
      ['Identifiers', plural(preview.identifiers, 'identifier (e-mail, phone)', 'identifiers (e-mail, phone)')],
      ['Traits', plural(preview.traits, 'trait', 'traits')],
      ['Interactions', plural(preview.interactions, 'interaction', 'interactions')],
      ['Consent statements', plural(preview.consent_records, 'statement', 'statements')],
      ['Objections', plural(preview.objections, 'objection', 'objections')],
    ], 'erase-counts'),
  ];
  if (preview.held.length > 0) {
    parts.push(h(
      'div',
      { class: 'message warning', role: 'note' },
      h('strong', {}, 'Kept under a legal hold: '),
      preview.held.map((held) => `${plural(held.interactions, 'interaction', 'interactions')} for ${held.purpose} (${held.legal_basis.replaceAll('_', ' ')}) until ${day(held.until)}`).join('; '),
      '. They are kept restricted to that purpose, without any identifier, and deleted by retention then.',
    ));
  }
  if (preview.open_requests > 0) {
    parts.push(h(
      'div',
      { class: 'message warning', role: 'note' },
      h('strong', {}, `${plural(preview.open_requests, 'open request', 'open requests')} for this person: `),
      'the erasure completes them, explaining that the person was erased.',
    ));
  }
  return parts;
}

/**
 * The confirmation every erasure needs, wherever it starts: the officer sees what will be
 * erased and what is kept (`preview`, when the person could be looked up; `note` says why not),
 * and types who is erased (`who`: the subject id, or the identifier a request names) before
 * `erase` runs.
 */
function confirmErasure(who, erase, { offerSuppression = false, preview = null, note = null } = {}) {
  const typed = h('input', { name: 'confirm', autocomplete: 'off', spellcheck: 'false' });
  const suppress = h('input', { type: 'checkbox', name: 'suppress' });
  const confirm = h('button', { type: 'submit', class: 'danger', disabled: true }, 'Erase permanently');
  const cancel = h('button', { type: 'button', class: 'secondary', onclick: () => dialog.close() }, 'Cancel');
  typed.addEventListener('input', () => {
    confirm.disabled = typed.value !== who;
  });
  const dialog = h(
    'dialog',
    { 'aria-labelledby': 'erase-title' },
    h(
      'form',
      {
        class: 'stack',
        onsubmit: async (event) => {
          event.preventDefault();
          if (typed.value !== who) return;
          confirm.disabled = true;
          dialog.close();
          await erase(suppress.checked);
        },
      },
      h('h2', { id: 'erase-title' }, 'Erase this person?'),
      h('p', {}, 'Their key is destroyed first, then every record about them. This cannot be undone. The audit log keeps only a pseudonym.'),
      previewParts(preview),
      note ? h('p', { class: 'message warning', role: 'note' }, note) : null,
      offerSuppression
        ? h('div', { class: 'field' }, h('label', {}, suppress, ' Also refuse any future data about this id (until the suppression is lifted)'))
        : null,
      field(`Type ${who} to confirm`, typed),
      h('div', { class: 'actions' }, confirm, cancel),
    ),
  );
  trapFocus(dialog);
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  typed.focus();
}

/**
 * What executing an erasure request would do, for the dialog: the person it names is looked up
 * (by subject id, or by e-mail address when exactly one person has it).
 */
async function requestErasurePreview(named) {
  const path = (subjectId) => `/v1/subjects/${encodeURIComponent(subjectId)}/erasure-preview`;
  const lookUp = async (subjectId) => {
    try {
      return { preview: await call('GET', path(subjectId)) };
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        return { note: 'Nobody with this id is held: executing the request completes it with nothing to erase.' };
      }
      return { note: `What the erasure will do could not be shown: ${error.message}` };
    }
  };
  if (named.subject_id) return lookUp(named.subject_id);
  if (named.email && may('subjects.export')) {
    try {
      const found = await call('POST', '/v1/lookup/subjects', { email: named.email });
      if (found.subjects.length === 1) return lookUp(found.subjects[0].subject_id);
      if (found.subjects.length === 0) {
        return { note: 'Nobody with this e-mail address is held: executing the request completes it with nothing to erase.' };
      }
      return { note: `${found.subjects.length} people have this e-mail address: the request cannot be executed until it names one of them.` };
    } catch (error) {
      return { note: `What the erasure will do could not be shown: ${error.message}` };
    }
  }
  return { note: 'The request names the person only by a hash: what the erasure will do is shown after it.' };
}

/** What erasing the person with this subject id would do; `null` (announced) when unknown. */
async function erasurePreview(subjectId) {
  return attempt(() => call('GET', `/v1/subjects/${encodeURIComponent(subjectId)}/erasure-preview`));
}

async function confirmErase(subjectId) {
  clearStatus();
  const preview = await erasurePreview(subjectId);
  if (!preview) return;
  confirmErasure(subjectId, async (suppress) => {
    clearStatus();
    const query = suppress ? '?suppress=true' : '';
    const receipt = await attempt(() => call('DELETE', `/v1/subjects/${encodeURIComponent(subjectId)}${query}`));
    if (receipt) {
      showReceipt(subjectId, receipt);
    }
  }, { offerSuppression: true, preview });
}

/**
 * An erasure's receipt, shown once: the API hands the signed receipt out with the erasure and
 * does not keep it (it names the person), so it can be copied and downloaded here.
 */
function showReceipt(who, receipt, requestId = null, justErased = true) {
  const counts = Object.entries(receipt.counts || {})
    .filter(([kind]) => kind !== 'held_interactions')
    .map(([kind, n]) => [kind.replaceAll('_', ' '), String(n)]);
  const held = receipt.held || [];
  const fileName = `erasure-receipt-${receipt.id || 'unknown'}.jws`;
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(receipt.receipt);
      announce('Receipt copied.');
    } catch {
      announce('The browser did not allow copying: select the receipt and copy it, or download it.', 'error');
    }
  };
  const saveReceipt = () => {
    const url = URL.createObjectURL(new Blob([`${receipt.receipt}\n`], { type: 'application/jose' }));
    const link = h('a', { href: url, download: fileName });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    announce(`Downloaded ${fileName}.`);
  };
  show(
    'Erasure receipt',
    justErased ? h('p', { class: 'message info' }, `${who} has been erased.`) : null,
    h('div', { class: 'panel' }, facts([['Erasure id', h('code', {}, receipt.id)], ['Erased at', when(receipt.erased_at)], ['Future data refused', receipt.suppressed ? 'Yes' : 'No']])),
    table('What was deleted', ['Kind', 'Count'], counts),
    held.length
      ? [
        h('h2', {}, 'Kept under a legal hold'),
        h('p', { class: 'hint' }, 'Restricted to the purpose that holds them, without any identifier, and deleted by retention on the day shown.'),
        table('What is held, and until when', ['Purpose', 'Legal basis', 'Interactions', 'Until'], held.map((entry) => [
          entry.purpose, entry.legal_basis.replaceAll('_', ' '), String(entry.interactions), day(entry.until),
        ])),
      ]
      : null,
    h('h2', {}, 'Signed receipt'),
    h('p', { class: 'hint' }, requestId
      ? `A compact JWS; verify it with the key published at /v1/consents/receipt-key. It names the person, so the service keeps it only ${receipt.kept_until ? `until ${when(receipt.kept_until)}` : 'for 30 days'}, with the request ("Show the erasure receipt"); then it is shredded.`
      : 'A compact JWS; verify it with the key published at /v1/consents/receipt-key. It is shown only now: an erasure made from this screen is not a request, and the service does not keep its receipt, because it names the person. Copy or download it before leaving this page.'),
    h('pre', { class: 'panel mono', 'aria-label': 'Signed receipt' }, receipt.receipt),
    h(
      'div',
      { class: 'actions' },
      h('button', { type: 'button', onclick: copy }, 'Copy receipt'),
      h('button', { type: 'button', class: 'secondary', onclick: saveReceipt }, 'Download receipt'),
    ),
    requestId
      ? h('p', {}, h('a', {
        href: `#/requests/${encodeURIComponent(requestId)}`,
        // The address is the request's already (the receipt replaced its view): show it again.
        onclick: (event) => {
          event.preventDefault();
          renderRequest(requestId);
        },
      }, 'Back to the request'))
      : h('p', {}, h('a', { href: '#/subjects' }, 'Find another person')),
  );
}

// ---------------------------------------------------------------------------------------------
// Audit

/** Every action the audit log records (docs/audit.md). */
const AUDIT_ACTIONS = [
  'audit.checkpoint', 'audit.read', 'audit.verify',
  'consents.gpc', 'consents.read', 'consents.write',
  'holds.end', 'holds.expire', 'holds.keep', 'holds.read',
  'insights.query',
  'interactions.read', 'interactions.write',
  'keys.create', 'keys.destroy_epoch', 'keys.list', 'keys.revoke', 'keys.rotate_epoch', 'keys.rotate_master',
  'objections.lift', 'objections.write',
  'requests.complete', 'requests.create', 'requests.execute', 'requests.extend', 'requests.list', 'requests.read',
  'reports.consents',
  'requests.receipt', 'requests.receipts_expire', 'requests.reject', 'requests.verify',
  'retention.expire',
  'segments.create', 'segments.export', 'segments.list', 'segments.preview', 'segments.probe_alert',
  'subjects.erase', 'subjects.erasure_preview', 'subjects.export', 'subjects.lookup', 'subjects.restrict',
  'subjects.restriction_lift', 'subjects.reveal', 'subjects.suppress', 'subjects.suppression_lift',
  'subjects.view', 'subjects.write',
];

async function renderAudit(filters = {}, cursor = null, history = []) {
  const display = view();
  const inputs = {
    subject_id: h('input', { name: 'subject_id', value: filters.subject_id || '', autocomplete: 'off' }),
    action: select('action', [['', 'Any action'], ...AUDIT_ACTIONS.map((a) => [a, a])], filters.action || ''),
    decision: select('decision', [['', 'Any'], ['allow', 'Allowed'], ['deny', 'Denied']], filters.decision || ''),
    from: dayInput('from', filters.from || ''),
    to: dayInput('to', filters.to || ''),
  };
  const filterForm = h(
    'form',
    {
      class: 'row',
      'aria-label': 'Filter the audit log',
      onsubmit: (event) => {
        event.preventDefault();
        clearFieldErrors(filterForm);
        if (!daysValid(inputs, ['from', 'to'], true)) return;
        const next = {};
        for (const [name, input] of Object.entries(inputs)) {
          if (input.value.trim()) next[name] = input.value.trim();
        }
        // A new question: an earlier answer's error no longer applies.
        clearStatus();
        renderAudit(next);
      },
    },
    field('Subject id', inputs.subject_id),
    field('Action', inputs.action),
    field('Decision', inputs.decision),
    field('From', inputs.from, 'YYYY-MM-DD, UTC'),
    field('To', inputs.to, 'YYYY-MM-DD, UTC; the whole day'),
    h('button', { type: 'submit', class: 'secondary' }, 'Apply'),
  );
  const query = new URLSearchParams({ limit: '50' });
  for (const [name, value] of Object.entries(filters)) {
    // `to` is exclusive: the whole of the day chosen is the start of the next one.
    const dayAfter = (day) => new Date(Date.parse(`${day}T00:00:00Z`) + 86400000).toISOString();
    query.set(name, name === 'from' ? `${value}T00:00:00Z` : name === 'to' ? dayAfter(value) : value);
  }
  if (cursor) query.set('cursor', cursor);
  const page = await attempt(() => call('GET', `/v1/audit?${query}`));
  const entries = page ? page.entries : [];
  const rows = entries.map((e) => [
    String(e.seq),
    when(e.at),
    e.action,
    actorOf(e),
    e.purposes.join(', ') || '—',
    e.decision === 'deny' ? h('span', { class: 'badge bad' }, `denied: ${e.reason || ''}`) : 'allowed',
    String(e.records),
    h('span', { class: 'mono' }, e.target || '—'),
  ]);
  const paging = h('div', { class: 'actions' });
  if (history.length > 0) {
    paging.append(h('button', { type: 'button', class: 'secondary', onclick: () => renderAudit(filters, history[history.length - 1], history.slice(0, -1)) }, 'Newer entries'));
  }
  if (page && page.next_cursor) {
    paging.append(h('button', { type: 'button', class: 'secondary', onclick: () => renderAudit(filters, page.next_cursor, [...history, cursor]) }, 'Older entries'));
  }
  const verifyResult = h('div', { 'aria-live': 'polite' });
  display(
    'Audit log',
    h('p', { class: 'hint' }, 'Every action on personal data, newest first. People appear only as pseudonyms.'),
    h('div', { class: 'actions' }, h('button', { type: 'button', onclick: () => verify(verifyResult) }, 'Verify the chain')),
    verifyResult,
    filterForm,
    table('Audit entries', ['#', 'When', 'Action', 'Who', 'Purposes', 'Decision', 'Records', 'Target'], rows),
    paging,
  );
}

async function verify(target) {
  clearStatus();
  const report = await attempt(() => call('GET', '/v1/audit/verify'));
  if (!report) return;
  if (report.ok) {
    target.replaceChildren(h('p', { class: 'message info' }, `The audit log verifies: ${report.entries} entries, every hash and signed checkpoint intact.`));
  } else {
    target.replaceChildren(
      h(
        'div',
        { class: 'message error' },
        h('p', {}, `The audit log does NOT verify. First invalid entry: #${report.first_invalid}.`),
        facts([['Reason', report.reason || '—'], ['Detail', report.detail || '—'], ['Entries checked', String(report.entries)]]),
      ),
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Policy and the record of processing

async function renderPolicy() {
  const display = view();
  const [policy, ropa] = await Promise.all([
    attempt(() => call('GET', '/v1/policy')),
    attempt(() => call('GET', '/v1/ropa')),
  ]);
  if (!policy || !ropa) {
    display('Policy');
    return;
  }
  const categories = new Map();
  for (const f of policy.fields) {
    if (!categories.has(f.category)) categories.set(f.category, []);
    categories.get(f.category).push(f.segmentable ? `${f.name} (segmentable)` : f.name);
  }
  display(
    'Policy',
    h('p', { class: 'hint' }, 'Policy SHA-256 (stored with every audit entry): ', h('code', {}, policy.sha256)),
    h('h2', {}, 'Purposes'),
    table(
      'Purposes of processing',
      ['Purpose', 'Legal basis', 'Retention', 'GPC opt-out', 'Categories'],
      policy.purposes.map((p) => [p.id, p.legal_basis.replaceAll('_', ' '), `${p.retention_days} days`, p.gpc ? 'Yes' : 'No', p.categories.join(', ')]),
    ),
    h('h2', {}, 'Data categories'),
    table('Declared fields by category', ['Category', 'Fields'], [...categories.entries()].sort().map(([c, names]) => [c, names.join(', ')])),
    h('h2', {}, 'Roles'),
    table('Roles', ['Role', 'Actions', 'Purposes'], policy.roles.map((r) => [r.id, r.actions.join(', '), (r.purposes || []).join(', ') || '—'])),
    h('h2', {}, 'Record of processing activities (Art. 30)'),
    h('p', { class: 'hint' }, `Data subjects: ${ropa.data_subjects}`),
    table(
      'Processing activities',
      ['Purpose', 'Description', 'Legal basis', 'Data', 'Retention', 'Recipients'],
      ropa.activities.map((a) => [
        a.purpose,
        a.description,
        a.legal_basis.replaceAll('_', ' '),
        a.fields.join(', ') || a.data_categories.join(', '),
        `${a.retention_days} days`,
        a.recipients.map((r) => `${r.role} (${r.actions.join(', ')})`).join('; ') || '—',
      ]),
    ),
    h('h3', {}, 'Transfers'),
    h('p', {}, ropa.transfers),
    h('h3', {}, 'Security measures'),
    h('ul', {}, ropa.security_measures.map((m) => h('li', {}, m))),
  );
}

// ---------------------------------------------------------------------------------------------
// Charts: plain SVG, drawn from the numbers the table beside each shows (the table is the
// accessible form of the chart; the chart is an image named for what it shows). Series differ by
// colour, line pattern and marker shape, never by colour alone.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Creates an SVG element (attributes only: the console's CSP allows no inline style). */
function svg(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

const SERIES = [
  { colour: '#0b57d0', dash: null, marker: 'circle' },
  { colour: '#a4161a', dash: '7 4', marker: 'square' },
  { colour: '#1e6b34', dash: '2 3', marker: 'triangle' },
  { colour: '#6a3d9a', dash: '9 3 2 3', marker: 'diamond' },
  { colour: '#7a4b00', dash: '4 2', marker: 'circle' },
  { colour: '#3a3f45', dash: '1 2', marker: 'square' },
];

function marker(kind, x, y, colour) {
  switch (kind) {
    case 'square':
      return svg('rect', { x: x - 3.5, y: y - 3.5, width: 7, height: 7, fill: colour });
    case 'triangle':
      return svg('polygon', { points: `${x},${y - 4.5} ${x - 4.5},${y + 3.5} ${x + 4.5},${y + 3.5}`, fill: colour });
    case 'diamond':
      return svg('polygon', { points: `${x},${y - 5} ${x + 5},${y} ${x},${y + 5} ${x - 5},${y}`, fill: colour });
    default:
      return svg('circle', { cx: x, cy: y, r: 3.5, fill: colour });
  }
}

/** A round upper bound for an axis, and its tick step. */
function axisScale(max) {
  if (max <= 0) return { top: 1, step: 1 };
  const magnitude = 10 ** Math.floor(Math.log10(max));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => max / s <= 5) || magnitude * 10;
  return { top: Math.ceil(max / step) * step, step };
}

const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { left: 56, right: 16, top: 16, bottom: 44 };

/**
 * A chart of `series` ([{name, values: [{value, interval?}] }]) over `labels`: lines with their
 * intervals as bands when `kind` is 'line', bars with interval whiskers when 'bar'.
 */
function chart(title, labels, series, kind = 'line') {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const highest = Math.max(0, ...series.flatMap((s) => s.values.map((v) => (v ? (v.interval ? v.interval[1] : v.value) : 0))));
  const { top, step } = axisScale(highest);
  const y = (value) => MARGIN.top + plotH - (value / top) * plotH;
  const slot = plotW / Math.max(labels.length, 1);
  const x = (index) => MARGIN.left + slot * index + slot / 2;
  const parts = [svg('title', {}, title)];
  for (let tick = 0; tick <= top + step / 2; tick += step) {
    parts.push(svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(tick), y2: y(tick), stroke: '#c9d0d8', 'stroke-width': 1 }));
    parts.push(svg('text', { x: MARGIN.left - 6, y: y(tick) + 4, 'text-anchor': 'end', 'font-size': 12, fill: '#1b1f24' }, Number.isInteger(tick) ? tick.toLocaleString('en') : tick.toFixed(2)));
  }
  const every = Math.max(1, Math.ceil(labels.length / 8));
  labels.forEach((label, index) => {
    if (index % every === 0) {
      parts.push(svg('text', { x: x(index), y: HEIGHT - MARGIN.bottom + 18, 'text-anchor': 'middle', 'font-size': 12, fill: '#1b1f24' }, label));
    }
  });
  parts.push(svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0), stroke: '#1b1f24', 'stroke-width': 1 }));
  series.forEach((s, n) => {
    const style = SERIES[n % SERIES.length];
    if (kind === 'bar') {
      const band = (slot * 0.8) / series.length;
      s.values.forEach((v, index) => {
        if (!v) return;
        const left = x(index) - slot * 0.4 + band * n;
        parts.push(svg('rect', { x: left, y: y(v.value), width: Math.max(band - 2, 1), height: Math.max(y(0) - y(v.value), 0), fill: style.colour, 'fill-opacity': 0.85 }));
        if (v.interval) {
          const middle = left + band / 2;
          parts.push(svg('path', { d: `M${middle} ${y(v.interval[0])} V${y(v.interval[1])} M${middle - 4} ${y(v.interval[0])} H${middle + 4} M${middle - 4} ${y(v.interval[1])} H${middle + 4}`, stroke: '#1b1f24', 'stroke-width': 1.5, fill: 'none' }));
        }
      });
      return;
    }
    const points = s.values.map((v, index) => (v ? [x(index), v] : null)).filter(Boolean);
    const upper = points.filter(([, v]) => v.interval).map(([px, v]) => `${px},${y(v.interval[1])}`);
    const lower = points.filter(([, v]) => v.interval).map(([px, v]) => `${px},${y(v.interval[0])}`).reverse();
    if (upper.length > 1) {
      parts.push(svg('polygon', { points: [...upper, ...lower].join(' '), fill: style.colour, 'fill-opacity': 0.12, stroke: 'none' }));
    }
    parts.push(svg('polyline', { points: points.map(([px, v]) => `${px},${y(v.value)}`).join(' '), fill: 'none', stroke: style.colour, 'stroke-width': 2, 'stroke-dasharray': style.dash }));
    for (const [px, v] of points) parts.push(marker(style.marker, px, y(v.value), style.colour));
  });
  const legend = series.length > 1 || series[0]?.name
    ? h('ul', { class: 'legend' }, series.map((s, n) => {
      const style = SERIES[n % SERIES.length];
      return h('li', {}, svg('svg', { width: 28, height: 12, 'aria-hidden': 'true' },
        kind === 'bar'
          ? svg('rect', { x: 4, y: 1, width: 20, height: 10, fill: style.colour })
          : [svg('line', { x1: 0, x2: 28, y1: 6, y2: 6, stroke: style.colour, 'stroke-width': 2, 'stroke-dasharray': style.dash }), marker(style.marker, 14, 6, style.colour)]), s.name);
    }))
    : null;
  return h('figure', { class: 'chart' },
    svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': title, preserveAspectRatio: 'xMidYMid meet' }, parts),
    legend,
    h('figcaption', { class: 'hint' }, `${title}. The same numbers are in the table below.`));
}

// ---------------------------------------------------------------------------------------------
// Insights (a marketer's screen): a differentially private question, its chart and its table

const TIME_KEYS = ['day', 'week', 'month'];

/** The day `days` before today, `YYYY-MM-DD`. */
const daysAgo = (days) => new Date(Date.now() - days * 86400000).toISOString().slice(0, 10);

function budgetFacts(budgets) {
  if (!budgets || budgets.length === 0) {
    return h('p', { class: 'message info' }, 'No purpose your role may ask about declares a privacy budget.');
  }
  return table(
    'Privacy budget today',
    ['Purpose', 'ε per day', 'ε spent', 'ε left', 'Resets'],
    budgets.map((b) => [b.purpose, String(b.epsilon_per_day), String(b.epsilon_spent), String(b.epsilon_left), when(b.resets_at)]),
  );
}

function insightResult(question, answer) {
  const keys = question.group_by;
  const timeKey = keys.find((k) => TIME_KEYS.includes(k));
  const otherKey = keys.find((k) => !TIME_KEYS.includes(k));
  const cells = answer.cells;
  const summary = facts([
    ['ε spent', answer.repeated ? '0 (the answer given earlier today to the same question)' : String(answer.epsilon_spent)],
    ['ε left today', String(answer.budget.epsilon_left)],
    ['Budget resets', when(answer.budget.resets_at)],
    ['Contribution bound', `${answer.bound.cells} cells per person, ${answer.bound.per_cell} per cell`],
    ['Suppressed below', answer.threshold === null ? 'nothing suppressed' : `${answer.threshold} people (values fewer people have, after noise, are absent)`],
  ]);
  let figure;
  const what = question.measure === 'people' ? 'People' : 'Interactions';
  if (timeKey) {
    const labels = [...new Set(cells.map((c) => c.key[timeKey]))].sort();
    const names = otherKey ? [...new Set(cells.map((c) => c.key[otherKey]))].sort() : [''];
    const series = names.map((name) => ({
      name: otherKey ? `${otherKey}: ${name}` : '',
      values: labels.map((label) => cells.find((c) => c.key[timeKey] === label && (!otherKey || c.key[otherKey] === name)) || null),
    }));
    figure = chart(`${what} by ${timeKey}${otherKey ? ` and ${otherKey}` : ''}, with 95 % intervals`, labels, series, 'line');
  } else {
    const labels = otherKey ? cells.map((c) => c.key[otherKey]) : ['All'];
    figure = chart(`${what}${otherKey ? ` by ${otherKey}` : ''}, with 95 % intervals`, labels, [{ name: '', values: cells }], 'bar');
  }
  const headers = [...keys, 'Value', '95 % interval'];
  const rows = cells.map((c) => [...keys.map((k) => c.key[k]), c.value.toLocaleString('en'), `${c.interval[0].toLocaleString('en')} – ${c.interval[1].toLocaleString('en')}`]);
  return [h('h2', {}, 'Answer'), summary, cells.length ? figure : h('p', {}, 'Every cell was below the threshold: nothing to show.'), table('Insight cells', headers, rows)];
}

async function renderInsights(question = null, answer = null) {
  const display = view();
  const session = currentSession();
  const budgets = await attempt(() => call('GET', '/v1/insights/budget'));
  const inputs = {
    purpose: select('purpose', session.purposes.map((p) => [p, p]), question?.purpose || session.purposes[0]),
    measure: select('measure', [['people', 'People (with at least one interaction)'], ['interactions', 'Interactions']], question?.measure || 'people'),
    time: select('time', [['week', 'Week'], ['day', 'Day'], ['month', 'Month'], ['', 'No time buckets']], question ? (question.group_by.find((k) => TIME_KEYS.includes(k)) || '') : 'week'),
    by: select('by', [['', 'Nothing else'], ['channel', 'Channel'], ['type', 'Interaction type'], ['trait', 'A trait (name below)']], question ? (question.group_by.find((k) => !TIME_KEYS.includes(k))?.startsWith('trait:') ? 'trait' : (question.group_by.find((k) => !TIME_KEYS.includes(k)) || '')) : ''),
    trait: h('input', { name: 'trait', value: question?.group_by.find((k) => k.startsWith('trait:'))?.slice(6) || '', autocomplete: 'off' }),
    from: dayInput('from', question?.from || daysAgo(83)),
    to: dayInput('to', question?.to || daysAgo(0)),
    epsilon: h('input', { name: 'epsilon', value: String(question?.epsilon ?? 0.1), inputmode: 'decimal', autocomplete: 'off' }),
  };
  const form = h(
    'form',
    {
      'aria-label': 'Ask a question',
      onsubmit: async (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        if (!daysValid(inputs, ['from', 'to'])) return;
        const epsilon = Number(inputs.epsilon.value.trim());
        if (!(epsilon > 0)) {
          fieldError(inputs.epsilon, 'ε must be a positive number, such as 0.1.');
          return;
        }
        const groupBy = [];
        if (inputs.time.value) groupBy.push(inputs.time.value);
        if (inputs.by.value === 'trait') {
          if (!inputs.trait.value.trim()) {
            fieldError(inputs.trait, 'Name the trait to group by.');
            return;
          }
          groupBy.push(`trait:${inputs.trait.value.trim()}`);
        } else if (inputs.by.value) {
          groupBy.push(inputs.by.value);
        }
        const asked = {
          purpose: inputs.purpose.value,
          measure: inputs.measure.value,
          from: inputs.from.value.trim(),
          to: inputs.to.value.trim(),
          group_by: groupBy,
          epsilon,
        };
        clearStatus();
        const result = await attemptFor(inputs.from, () => call('POST', '/v1/insights', asked));
        if (result) renderInsights(asked, result);
      },
    },
    h('div', { class: 'row' },
      field('Purpose', inputs.purpose),
      field('Count', inputs.measure),
      field('Time buckets', inputs.time),
      field('Group also by', inputs.by),
      field('Trait', inputs.trait, 'Only with “A trait”: a segmentable trait, e.g. country'),
    ),
    h('div', { class: 'row' },
      field('From', inputs.from, 'YYYY-MM-DD, UTC'),
      field('To', inputs.to, 'YYYY-MM-DD, UTC; the whole day'),
      field('ε to spend', inputs.epsilon, 'Privacy cost; less ε, more noise'),
    ),
    h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Ask')),
  );
  display(
    'Insights',
    h('p', { class: 'hint' }, 'Differentially private counts for one purpose: every answer has noise added and spends part of the purpose’s daily privacy budget. Asking the same question again today gives the same answer and spends nothing.'),
    budgetFacts(budgets?.budgets),
    h('h2', {}, 'Ask a question'),
    form,
    answer ? insightResult(question, answer) : null,
  );
}

// ---------------------------------------------------------------------------------------------
// Consent trends (compliance): exact counts per period, purpose and notice version

/** The ISO week of a day (`2026-W05`), as the API labels weeks. */
function isoWeek(dayText) {
  const date = new Date(`${dayText}T00:00:00Z`);
  const weekday = (date.getUTCDay() + 6) % 7;
  // The Thursday of the same week decides its year.
  const thursday = new Date(date.getTime() + (3 - weekday) * 86400000);
  const firstThursday = new Date(Date.UTC(thursday.getUTCFullYear(), 0, 4));
  const week = 1 + Math.round(((thursday - firstThursday) / 86400000 - 3 + ((firstThursday.getUTCDay() + 6) % 7)) / 7);
  return `${thursday.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}

/** Every period from `from` to `to`: days, or ISO weeks (empty ones included, so a chart's
 * spacing is time's). */
function periodsBetween(from, to, bucket) {
  const periods = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`); t += 86400000) {
    const dayText = new Date(t).toISOString().slice(0, 10);
    const period = bucket === 'week' ? isoWeek(dayText) : dayText;
    if (periods[periods.length - 1] !== period) periods.push(period);
  }
  return periods;
}

async function renderConsentTrends(filters = null) {
  const display = view();
  const asked = filters || { from: daysAgo(83), to: daysAgo(0), bucket: 'week', purpose: '' };
  const inputs = {
    from: dayInput('from', asked.from),
    to: dayInput('to', asked.to),
    bucket: select('bucket', [['week', 'ISO week'], ['day', 'Day']], asked.bucket),
    purpose: h('input', { name: 'purpose', value: asked.purpose, autocomplete: 'off' }),
  };
  const query = () => {
    const params = new URLSearchParams({ from: asked.from, to: asked.to, bucket: asked.bucket });
    if (asked.purpose) params.set('purpose', asked.purpose);
    return params;
  };
  const form = h(
    'form',
    {
      class: 'row',
      'aria-label': 'Choose the period',
      onsubmit: (event) => {
        event.preventDefault();
        clearFieldErrors(form);
        if (!daysValid(inputs, ['from', 'to'])) return;
        clearStatus();
        renderConsentTrends({ from: inputs.from.value.trim(), to: inputs.to.value.trim(), bucket: inputs.bucket.value, purpose: inputs.purpose.value.trim() });
      },
    },
    field('From', inputs.from, 'YYYY-MM-DD, UTC'),
    field('To', inputs.to, 'YYYY-MM-DD, UTC; the whole day'),
    field('Period', inputs.bucket),
    field('Purpose', inputs.purpose, 'Optional: one purpose'),
    h('button', { type: 'submit', class: 'secondary' }, 'Show'),
  );
  const report = await attemptFor(inputs.from, () => call('GET', `/v1/reports/consents?${query()}`));
  const content = [form];
  if (report) {
    const periods = report.rows.length ? periodsBetween(report.from, report.to, report.bucket) : [];
    const sum = (period, field) => report.rows.filter((r) => r.period === period).reduce((total, r) => total + r[field], 0);
    const series = [['grants', 'Grants'], ['withdrawals', 'Withdrawals'], ['objections', 'Objections']].map(([fieldName, name]) => ({
      name,
      values: periods.map((p) => ({ value: sum(p, fieldName) })),
    }));
    const rate = (value) => (value === null ? '—' : `${(value * 100).toFixed(1)} %`);
    content.push(
      h('div', { class: 'actions' }, h('button', {
        type: 'button',
        class: 'secondary',
        onclick: () => attempt(async () => {
          const params = query();
          params.set('format', 'csv');
          const { blob, name } = await download(`/v1/reports/consents?${params}`);
          const link = h('a', { href: URL.createObjectURL(blob), download: name });
          document.body.append(link);
          link.click();
          link.remove();
          announce(`Downloaded ${name}.`);
        }),
      }, 'Download CSV')),
      periods.length ? chart(`Consent statements and objections per ${report.bucket === 'week' ? 'ISO week' : 'day'}`, periods, series, 'line') : h('p', {}, 'No consent statements or objections in this period.'),
      table(
        'Totals per purpose',
        ['Purpose', 'Grants', 'Withdrawals', 'By GPC', 'Objections', 'Opt-in rate', 'GPC share of withdrawals'],
        report.totals.map((t) => [t.purpose, String(t.grants), String(t.withdrawals), String(t.gpc_withdrawals), String(t.objections), rate(t.opt_in_rate), rate(t.gpc_share)]),
      ),
      table(
        'Consent by period, purpose and notice',
        ['Period', 'Purpose', 'Notice', 'Grants', 'Withdrawals', 'By GPC', 'Objections', 'Opt-in rate'],
        report.rows.map((r) => [r.period, r.purpose, r.notice_id ? `${r.notice_id} v${r.notice_version}` : '—', String(r.grants), String(r.withdrawals), String(r.gpc_withdrawals), String(r.objections), rate(r.opt_in_rate)]),
      ),
    );
  }
  display(
    'Consent trends',
    h('p', { class: 'hint' }, 'Exact counts of consent statements and objections; no person is shown. Reading this report is recorded in the audit log.'),
    content,
  );
}

// ---------------------------------------------------------------------------------------------

window.addEventListener('hashchange', () => {
  clearStatus();
  render();
});
render();
