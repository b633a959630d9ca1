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

const dateFormat = new Intl.DateTimeFormat('en-GB', { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' });
function when(text) {
  return text ? `${dateFormat.format(new Date(text))} UTC` : '—';
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

/** Runs an API action, showing its error in words; a lost session returns to sign-in. */
async function attempt(work) {
  try {
    return await work();
  } catch (error) {
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
}

// ---------------------------------------------------------------------------------------------
// Layout, navigation

const SECTIONS = [
  { hash: '#/requests', label: 'Requests', allowed: () => may('requests.manage') },
  { hash: '#/subjects', label: 'Subjects', allowed: () => may('subjects.export') },
  { hash: '#/audit', label: 'Audit log', allowed: () => may('audit.read') },
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
    default:
      break;
  }
  if (allowed.length > 0) {
    location.hash = allowed[0].hash;
    return;
  }
  show('Nothing to show', h('p', {}, `The role ${session.role} has no compliance actions in this console.`));
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
        if (!value) {
          announce('Paste your API key to sign in.', 'error');
          key.focus();
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
    h('a', { href: `#/requests/${encodeURIComponent(request.id)}` }, `${kindLabel(request.type)}: ${personOf(request)}`),
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
    table('Request queue', ['Request', 'Regulation', 'Status', 'Received', 'Due', 'Days left'], rows, (index) => (requests[index].overdue ? 'overdue' : null)),
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
  const receivedOn = h('input', { type: 'date', name: 'received_on', value: today(), max: today(), required: true });
  // Objection: the purposes objected to.
  const purposeBoxes = (purposeIds || []).map((id) => h('input', { type: 'checkbox', name: 'purpose', value: id }));
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
    if (receivedOn.value && receivedOn.value !== today()) {
      body.received_at = `${receivedOn.value}T00:00:00Z`;
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
  return h(
    'section',
    { 'aria-labelledby': 'new-request' },
    h('h2', { id: 'new-request' }, 'Record a new request'),
    h(
      'form',
      {
        class: 'stack',
        onsubmit: async (event) => {
          event.preventDefault();
          clearStatus();
          const created = await attempt(() => call('POST', '/v1/requests', requestBody()));
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
      field('Received on', receivedOn, 'The day the request arrived (UTC); its deadline counts from then (from the start of an earlier day, from now for today).'),
      purposes,
      changes,
      h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Record request')),
    ),
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
  const act = async (path, body, done) => {
    clearStatus();
    const updated = await attempt(() => call('POST', `/v1/requests/${encodeURIComponent(id)}/${path}`, body));
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
      ? () => confirmErasure(named.subject_id ?? named.email ?? request.id, async () => {
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
          receipt: executed.erasure_receipt,
        }, id);
      })
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
            act('extend', { reason: extendReason.value.trim() }, 'Deadline extended.');
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
            act('reject', { reason: rejectReason.value.trim() }, 'Request rejected.');
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
        if (!text) {
          announce('Enter a subject id or an e-mail address.', 'error');
          value.focus();
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

/** The notice a statement names, with the proof of the text shown: its language and SHA-256. */
function noticeProof(notice) {
  if (!notice) return '—';
  const name = `${notice.id} v${notice.version}${notice.language ? ` (${notice.language})` : ''}`;
  if (!notice.sha256) return name;
  return h('span', {}, name, h('br'), h('code', { class: 'hash', title: `SHA-256 of the text shown: ${notice.sha256}` }, `text ${notice.sha256.slice(0, 12)}…`));
}

async function renderSubject(subjectId) {
  const display = view();
  const path = `/v1/subjects/${encodeURIComponent(subjectId)}`;
  const [state, trail] = await Promise.all([
    attempt(() => call('GET', `${path}/consents`)),
    may('audit.read')
      ? call('GET', `/v1/audit?${new URLSearchParams({ subject_id: subjectId, limit: '100' })}`).catch(() => null)
      : null,
  ]);
  const back = h('p', {}, h('a', { href: '#/subjects' }, 'Find another person'));
  if (!state) {
    display(`Subject ${subjectId}`, back);
    return;
  }
  const current = table(
    'Current consent, per purpose',
    ['Purpose', 'Status', 'Since'],
    state.current.map((c) => [c.purpose, h('span', { class: `badge ${c.status === 'granted' ? 'good' : 'bad'}` }, c.status), when(c.since)]),
  );
  const history = table(
    'Consent history, oldest first',
    ['Recorded', 'Purpose', 'Status', 'Notice', 'Source', 'Method'],
    (state.history || []).map((consent) => [
      when(consent.recorded_at),
      consent.purpose,
      consent.status,
      noticeProof(consent.notice),
      consent.source || '—',
      consent.method || '—',
    ]),
  );
  const objections = table('Objections (Art. 21)', ['Purpose', 'Since'], state.objections.map((o) => [o.purpose, when(o.since)]));
  const actions = [
    h('button', { type: 'button', class: 'secondary', onclick: () => save(`${path}/export`) }, 'Export JSON'),
    h('button', { type: 'button', class: 'secondary', onclick: () => save(`${path}/export?format=csv`) }, 'Export CSV (zip)'),
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
    h('div', { class: 'panel' }, facts([['Processing', state.restricted ? h('span', { class: 'badge bad' }, 'Restricted (Art. 18)') : 'Not restricted']])),
    h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions on this person' }, actions),
    h('h2', {}, 'Consents'),
    current,
    h('h3', {}, 'History'),
    history,
    h('h3', {}, 'Objections'),
    objections,
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

/**
 * The confirmation every erasure needs, wherever it starts: the officer types who is erased
 * (`who`: the subject id, or the identifier a request names) before `erase` runs.
 */
function confirmErasure(who, erase, offerSuppression = false) {
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
      offerSuppression
        ? h('div', { class: 'field' }, h('label', {}, suppress, ' Also refuse any future data about this id (until the suppression is lifted)'))
        : null,
      field(`Type ${who} to confirm`, typed),
      h('div', { class: 'actions' }, confirm, cancel),
    ),
  );
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  typed.focus();
}

function confirmErase(subjectId) {
  confirmErasure(subjectId, async (suppress) => {
    clearStatus();
    const query = suppress ? '?suppress=true' : '';
    const receipt = await attempt(() => call('DELETE', `/v1/subjects/${encodeURIComponent(subjectId)}${query}`));
    if (receipt) {
      showReceipt(subjectId, receipt);
    }
  }, true);
}

/**
 * An erasure's receipt, shown once: the API hands the signed receipt out with the erasure and
 * does not keep it (it names the person), so it can be copied and downloaded here.
 */
function showReceipt(who, receipt, requestId = null, justErased = true) {
  const counts = Object.entries(receipt.counts || {}).map(([kind, n]) => [kind.replaceAll('_', ' '), String(n)]);
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
  'interactions.read', 'interactions.write',
  'keys.create', 'keys.destroy_epoch', 'keys.list', 'keys.revoke', 'keys.rotate_epoch', 'keys.rotate_master',
  'objections.lift', 'objections.write',
  'requests.complete', 'requests.create', 'requests.execute', 'requests.extend', 'requests.list', 'requests.read',
  'requests.receipt', 'requests.receipts_expire', 'requests.reject', 'requests.verify',
  'retention.expire',
  'segments.create', 'segments.export', 'segments.list', 'segments.preview', 'segments.probe_alert',
  'subjects.erase', 'subjects.export', 'subjects.lookup', 'subjects.restrict', 'subjects.restriction_lift',
  'subjects.suppress', 'subjects.suppression_lift', 'subjects.write',
];

async function renderAudit(filters = {}, cursor = null, history = []) {
  const display = view();
  const inputs = {
    subject_id: h('input', { name: 'subject_id', value: filters.subject_id || '', autocomplete: 'off' }),
    action: select('action', [['', 'Any action'], ...AUDIT_ACTIONS.map((a) => [a, a])], filters.action || ''),
    decision: select('decision', [['', 'Any'], ['allow', 'Allowed'], ['deny', 'Denied']], filters.decision || ''),
    from: h('input', { name: 'from', type: 'date', value: filters.from || '' }),
    to: h('input', { name: 'to', type: 'date', value: filters.to || '' }),
  };
  const filterForm = h(
    'form',
    {
      class: 'row',
      'aria-label': 'Filter the audit log',
      onsubmit: (event) => {
        event.preventDefault();
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
    field('From', inputs.from),
    field('To', inputs.to),
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

window.addEventListener('hashchange', () => {
  clearStatus();
  render();
});
render();
