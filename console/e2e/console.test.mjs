// End-to-end tests of the compliance console in Debian's Chromium, headless, against a real
// server that `tests/api/console.rs` started and seeded. Run by that Rust test (part of
// `cargo test`); it passes what it seeded in the environment:
//   CONSOLE_URL, COMPLIANCE_KEY, MARKETER_KEY, COLLECTOR_KEY, SUBJECT_ID, SUBJECT_EMAIL, SCREENSHOT_DIR,
//   CHROMIUM (default /usr/bin/chromium).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE_SOURCE = await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} must be set (tests/api/console.rs sets it)`);
  return value;
};
const BASE = env('CONSOLE_URL');
const COMPLIANCE_KEY = env('COMPLIANCE_KEY');
const MARKETER_KEY = env('MARKETER_KEY');
const COLLECTOR_KEY = env('COLLECTOR_KEY');
const SUBJECT_ID = env('SUBJECT_ID');
const SUBJECT_EMAIL = env('SUBJECT_EMAIL');
const QUEUED_SUBJECT_ID = env('QUEUED_SUBJECT_ID');
const QUEUED_ERASURE_ID = env('QUEUED_ERASURE_ID');
const SHARED_EMAIL = env('SHARED_EMAIL');
const AMBIGUOUS_ACCESS_ID = env('AMBIGUOUS_ACCESS_ID');
const SCREENSHOTS = env('SCREENSHOT_DIR');

let browser;
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  // Any request leaving the server under test fails the run: nothing is fetched from a CDN.
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (!['blob:', 'data:'].includes(url.protocol) && url.origin !== new URL(BASE).origin) {
      throw new Error(`the console fetched ${url.origin}`);
    }
  });
  page.on('pageerror', (error) => {
    throw error;
  });
});

after(async () => {
  await browser?.close();
});

async function shot(name) {
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** axe-core's WCAG 2 A/AA rules on the current screen: no serious or critical violation. */
async function assertAccessible(screen) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) {
    // Evaluated through the DevTools protocol: the console's CSP (rightly) refuses inline
    // scripts, so axe cannot be added as a <script>.
    await page.evaluate(AXE_SOURCE);
  }
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert.deepEqual(violations, [], `accessibility violations on ${screen}`);
}

async function signIn(key) {
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

const heading = () => page.getByRole('heading', { level: 1 });

test('the console is served from the binary with a strict content security policy', async () => {
  const response = await page.goto(`${BASE}/console`);
  assert.equal(response.status(), 200);
  const csp = response.headers()['content-security-policy'];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.equal(await heading().textContent(), 'Sign in');
  // Chromium enforces it: an inline script is blocked.
  await assert.rejects(page.addScriptTag({ content: 'window.injected = 1;' }), /Content Security Policy/);
  assert.equal(await page.evaluate(() => window.injected), undefined);
  await assertAccessible('sign-in');
  await shot('sign-in');
});

test('a wrong key is refused in words, and nothing is kept in browser storage', async () => {
  await signIn('ck_notakey_notasecret');
  await page.getByRole('status').filter({ hasText: 'was not accepted' }).waitFor();
  assert.equal(await heading().textContent(), 'Sign in');
  await signIn(COMPLIANCE_KEY);
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  const storage = await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]);
  assert.deepEqual(storage, [0, 0, '']);
  const sections = await page.getByRole('navigation', { name: 'Sections' }).getByRole('link').allTextContents();
  assert.deepEqual(sections, ['Requests', 'Subjects', 'Audit log', 'Consent trends', 'Policy']);
});

test('the request queue shows deadlines and highlights overdue requests', async () => {
  await page.getByRole('link', { name: 'Requests' }).click();
  await page.getByRole('table', { name: 'Request queue' }).waitFor();
  const overdueRow = page.locator('tr.overdue');
  assert.equal(await overdueRow.count(), 1);
  // The queue scrolls from the keyboard when it is wider than the screen.
  assert.equal(await page.getByRole('region', { name: 'Request queue' }).getAttribute('tabindex'), '0');
  assert.match(await overdueRow.textContent(), /Overdue by \d+ days/);
  await assertAccessible('requests');
  // Every link in the queue has a name of its own (the day it came and the request's id).
  const names = await page.getByRole('table', { name: 'Request queue' }).getByRole('link')
    .evaluateAll((links) => links.map((link) => link.getAttribute('aria-label')));
  assert.ok(names.length > 1);
  assert.equal(new Set(names).size, names.length, names.join('\n'));
  assert.ok(names.every((name) => /, received \d{4}-\d{2}-\d{2} \(request [0-9a-f]{8}\)$/.test(name)), names.join('\n'));
  await shot('requests');
  // Open the overdue access request: verify the identity, extend, then execute it.
  await overdueRow.getByRole('link').click();
  await page.getByRole('heading', { name: 'Access request' }).waitFor();
  await page.getByRole('button', { name: 'Mark identity verified' }).click();
  await page.getByRole('status').filter({ hasText: 'Identity verified.' }).waitFor();
  // An extension without a reason is refused with the API's words.
  await page.getByRole('button', { name: 'Extend deadline' }).click();
  await page.getByRole('status').filter({ hasText: 'Please check the form' }).waitFor();
  // The error is tied to its field, for a screen reader as for the eye.
  const reasonField = page.getByLabel('Reason for extending');
  assert.equal(await reasonField.getAttribute('aria-invalid'), 'true');
  const describedBy = await reasonField.getAttribute('aria-describedby');
  assert.match(await page.locator(`#${describedBy.split(' ').pop()}`).textContent(), /give the reason for extending/);
  assert.equal(await page.evaluate(() => document.activeElement.getAttribute('name')), 'extend_reason');
  await reasonField.fill('Several systems to search');
  await page.getByRole('button', { name: 'Extend deadline' }).click();
  await page.getByRole('status').filter({ hasText: 'Deadline extended.' }).waitFor();
  await page.getByRole('button', { name: 'Execute' }).click();
  await page.getByRole('status').filter({ hasText: 'Request executed.' }).waitFor();
  assert.match(await page.locator('dl.facts').textContent(), /Statuscompleted/);
  // The result in words, and the export in either format.
  assert.match(await page.locator('dl.outcome').textContent(), /Person foundYesExportready to download \(JSON\)/);
  for (const [button, name] of [['Download the export (JSON)', /\.json$/], ['Download the export (CSV, zip)', /\.zip$/]]) {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: button }).click()]);
    assert.match(download.suggestedFilename(), name);
  }
  await shot('request');
  // The other request is rejected, with a reason.
  await page.getByRole('link', { name: 'Back to the queue' }).click();
  await page.getByRole('link', { name: 'Erasure (Art. 17)' }).first().click();
  await page.getByRole('heading', { name: 'Erasure request' }).waitFor();
  await page.getByLabel('Reason for rejecting').fill('Identity could not be verified');
  await page.getByRole('button', { name: 'Reject' }).click();
  await page.getByRole('status').filter({ hasText: 'Request rejected.' }).waitFor();
  assert.match(await page.locator('dl.facts').textContent(), /Rejected.*Identity could not be verified/);
  assert.match(await page.locator('dl.facts').textContent(), /Deadline ruleGDPR Art\. 12\(3\): one month/);
  // The queue lists open requests unless asked otherwise, with who each names and when it came.
  await page.getByRole('link', { name: 'Back to the queue' }).click();
  const queue = page.getByRole('table', { name: 'Request queue' });
  await queue.waitFor();
  const open = await queue.locator('tbody tr').allTextContents();
  assert.ok(open.length > 0);
  assert.ok(open.every((row) => !/completed|rejected/.test(row)), open.join('\n'));
  // Type and person in columns of their own.
  assert.deepEqual(
    await queue.locator('thead th').allTextContents(),
    ['Type', 'Person', 'Regulation', 'Status', 'Received', 'Due', 'Days left'],
  );
  assert.ok(open.some((row) => row.startsWith(`Erasure (Art. 17)${QUEUED_SUBJECT_ID}GDPR`)), open.join('\n'));
  await page.getByLabel('Status').selectOption('completed');
  await page.getByRole('button', { name: 'Apply' }).click();
  // A portability request was answered 50 days after it came; the access request above was
  // answered within its extended deadline.
  await queue.locator('tbody tr', { hasText: 'Completed late' }).waitFor();
  const late = await queue.locator('tbody tr', { hasText: 'Completed late' }).allTextContents();
  assert.equal(late.length, 1, late.join('\n'));
  assert.match(late[0], /Portability \(Art\. 20\)cust-console-nobody/);
});

test('executing an erasure request needs the typed confirmation, then shows the receipt to copy and download, and again later', async () => {
  await page.evaluate((id) => { location.hash = `#/requests/${encodeURIComponent(id)}`; }, QUEUED_ERASURE_ID);
  await page.getByRole('heading', { name: 'Erasure request' }).waitFor();
  await page.getByRole('button', { name: 'Mark identity verified' }).click();
  await page.getByRole('status').filter({ hasText: 'Identity verified.' }).waitFor();
  // Execute asks first; cancelling erases nothing.
  await page.getByRole('button', { name: 'Execute' }).click();
  const dialog = page.getByRole('dialog', { name: 'Erase this person?' });
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await dialog.waitFor({ state: 'detached' });
  assert.match(await page.locator('dl.facts').textContent(), /Statusverified/);
  await page.getByRole('button', { name: 'Execute' }).click();
  await dialog.waitFor();
  // What will be erased, counted as the officer sees the person.
  const counts = await dialog.locator('dl.erase-counts').textContent();
  assert.match(counts, /Identifiers0 identifiers/);
  assert.match(counts, /Traits1 trait/);
  assert.match(counts, /Interactions1 interaction/);
  // Focus stays inside the dialog, whichever way one tabs.
  for (const key of ['Tab', 'Tab', 'Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
    await page.keyboard.press(key);
    assert.ok(await page.evaluate(() => Boolean(document.activeElement.closest('dialog'))), `focus left the dialog after ${key}`);
  }
  const erase = dialog.getByRole('button', { name: 'Erase permanently' });
  assert.equal(await erase.isDisabled(), true);
  await dialog.getByLabel(`Type ${QUEUED_SUBJECT_ID} to confirm`).fill(`${QUEUED_SUBJECT_ID}x`);
  assert.equal(await erase.isDisabled(), true);
  await dialog.getByLabel(`Type ${QUEUED_SUBJECT_ID} to confirm`).fill(QUEUED_SUBJECT_ID);
  assert.equal(await erase.isDisabled(), false);
  await assertAccessible('request erase dialog');
  await shot('request-erasure-confirm');
  await erase.click();
  // The receipt the answer carries is shown at once, not lost to a reload of the request.
  await page.getByRole('heading', { name: 'Erasure receipt' }).waitFor();
  assert.match(await page.locator('.message').textContent(), new RegExp(`${QUEUED_SUBJECT_ID} has been erased`));
  const receipt = (await page.getByLabel('Signed receipt').textContent()).trim();
  assert.equal(receipt.split('.').length, 3, 'a compact JWS');
  assert.match(await page.getByRole('table', { name: 'What was deleted' }).textContent(), /interactions1/);
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download receipt' }).click(),
  ]);
  assert.match(download.suggestedFilename(), /^erasure-receipt-.+\.jws$/);
  assert.equal((await readFile(await download.path(), 'utf8')).trim(), receipt);
  await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: new URL(BASE).origin });
  await page.getByRole('button', { name: 'Copy receipt' }).click();
  await page.getByRole('status').filter({ hasText: 'Receipt copied.' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), receipt);
  await assertAccessible('request erasure receipt');
  await shot('request-erasure-receipt');
  await page.getByRole('link', { name: 'Back to the request' }).click();
  await page.getByRole('heading', { name: 'Erasure request' }).waitFor();
  assert.match(await page.locator('dl.facts').textContent(), /Statuscompleted/);
  assert.match(await page.locator('dl.outcome').textContent(), /Deleted.*1 interactions/);
  // Later, the same receipt from the request (kept 30 days for the person).
  await page.getByRole('button', { name: 'Show the erasure receipt' }).click();
  await page.getByRole('heading', { name: 'Erasure receipt' }).waitFor();
  assert.equal((await page.getByLabel('Signed receipt').textContent()).trim(), receipt);
  assert.match(await page.locator('main').textContent(), /keeps it only until/);
  await page.getByRole('link', { name: 'Back to the request' }).click();
  await page.getByRole('heading', { name: 'Erasure request' }).waitFor();
});

test('objection and rectification requests are recorded with what they ask for and the day they arrived', async () => {
  await page.getByRole('link', { name: 'Requests' }).click();
  await page.getByRole('heading', { name: 'Record a new request' }).waitFor();
  const form = page.locator('section[aria-labelledby="new-request"]');
  // What only an objection or a rectification asks for is hidden until that type is chosen.
  assert.equal(await form.getByRole('group', { name: 'Purposes objected to' }).isVisible(), false);
  await form.getByLabel('Type').selectOption('objection');
  await form.getByLabel('Value').fill('cust-console-9');
  const fiveDaysAgo = new Date(Date.now() - 5 * 86400000).toISOString().slice(0, 10);
  // A day in another format, or an objection to nothing, is refused at its field.
  await form.getByLabel('Received on').fill('5/12/2026');
  await form.getByRole('button', { name: 'Record request' }).click();
  await page.getByRole('status').filter({ hasText: 'written as YYYY-MM-DD' }).waitFor();
  assert.equal(await form.getByLabel('Received on').getAttribute('aria-invalid'), 'true');
  await form.getByLabel('Received on').fill(fiveDaysAgo);
  await form.getByRole('button', { name: 'Record request' }).click();
  await page.getByRole('status').filter({ hasText: 'choose at least one purpose' }).waitFor();
  assert.equal(await form.getByLabel('Received on').getAttribute('aria-invalid'), null);
  const group = form.getByRole('group', { name: 'Purposes objected to' });
  assert.equal(await group.getByRole('checkbox').first().getAttribute('aria-invalid'), 'true');
  await group.getByLabel('marketing', { exact: true }).check();
  await assertAccessible('new objection request');
  await form.getByRole('button', { name: 'Record request' }).click();
  await page.getByRole('heading', { name: 'Objection request' }).waitFor();
  // The confirmation stays on the request's screen.
  await page.getByRole('status').filter({ hasText: 'Request recorded; due' }).waitFor();
  const facts = await page.locator('dl.facts').textContent();
  assert.match(facts, /Purposes objected tomarketing/);
  // Shown in the format it was typed in.
  assert.match(facts, new RegExp(`Received${fiveDaysAgo} 00:00 UTC`));

  await page.getByRole('link', { name: 'Back to the queue' }).click();
  await page.getByRole('heading', { name: 'Record a new request' }).waitFor();
  await form.getByLabel('Type').selectOption('rectification');
  await form.getByLabel('Value').fill('cust-console-9');
  await form.getByLabel('Correct e-mail address').fill('corrected@example.org');
  await form.getByLabel('Correct traits').fill('country = AT');
  await form.getByRole('button', { name: 'Record request' }).click();
  await page.getByRole('heading', { name: 'Rectification request' }).waitFor();
  const changes = await page.locator('dl.facts').textContent();
  assert.match(changes, /corrected@example\.org/);
  assert.match(changes, /"country": "AT"/);
});

test('a failed execution shows the request as it now is, with the reason', async () => {
  await page.evaluate((id) => { location.hash = `#/requests/${encodeURIComponent(id)}`; }, AMBIGUOUS_ACCESS_ID);
  await page.getByRole('heading', { name: 'Access request' }).waitFor();
  assert.match(await page.locator('dl.facts').textContent(), new RegExp(`Person${SHARED_EMAIL.replaceAll('.', '\\.')}`));
  await page.getByRole('button', { name: 'Mark identity verified' }).click();
  await page.getByRole('status').filter({ hasText: 'Identity verified.' }).waitFor();
  await page.getByRole('button', { name: 'Execute' }).click();
  // Two people share the address: the execution fails, and the request is shown as it now is
  // (in progress), with the reason still there.
  await page.locator('dl.facts').filter({ hasText: 'Statusin progress' }).waitFor();
  assert.match(await page.locator('#status').textContent(), /subjects/);
  assert.match(await page.locator('#status').getAttribute('class'), /error/);
});

test('a person is found by e-mail, with consent state and history', async () => {
  await page.getByRole('link', { name: 'Subjects' }).click();
  await page.getByLabel('Find by').selectOption('email');
  await page.getByLabel('Subject id or e-mail').fill(SUBJECT_EMAIL);
  await page.getByRole('button', { name: 'Find' }).click();
  await page.getByRole('heading', { name: `Subject ${SUBJECT_ID}` }).waitFor();
  // The address never appears in the URL.
  assert.ok(!page.url().includes(SUBJECT_EMAIL.split('@')[0]));
  const current = page.getByRole('table', { name: 'Current consent, per purpose' });
  assert.match(await current.textContent(), /marketinggranted/);
  assert.match(await current.textContent(), /marketing\.emailwithdrawn/);
  const history = page.getByRole('table', { name: 'Consent history, oldest first' });
  assert.equal(await history.locator('tbody tr').count(), 5);
  // A statement read from a cookie banner's TC string names it, by the start of its SHA-256.
  assert.match(
    await history.locator('tbody tr', { hasText: 'marketing.personalization' }).textContent(),
    /withdrawn.*TCF TC string [0-9a-f]{12}…/,
  );
  // A grant is shown with whether it has effect now, and why not: the objection to
  // `marketing` takes the `marketing.sms` grant out of effect.
  const smsRow = current.locator('tbody tr', { hasText: 'marketing.sms' });
  assert.match(await smsRow.textContent(), /granted.*Not in effect: objected.*objected to “marketing”/);
  const bases = page.getByRole('table', { name: 'Legal basis in effect, per purpose' });
  assert.match(await bases.locator('tbody tr', { hasText: 'marketing.email' }).textContent(), /Not in effect: objected/);
  assert.match(await bases.locator('tbody tr', { hasText: 'support' }).first().textContent(), /contractIn effect/);
  // Traits, and the identifiers: which ones, their values only on demand (and audited).
  assert.match(await page.getByRole('table', { name: 'Traits' }).textContent(), /countryDE/);
  assert.ok(!(await page.locator('main').textContent()).includes(SUBJECT_EMAIL));
  assert.match(await page.locator('main').textContent(), /E-mail addressHeld \(hidden\)/);
  await page.getByRole('button', { name: 'Reveal identifiers' }).click();
  await page.getByRole('status').filter({ hasText: 'Identifiers revealed' }).waitFor();
  assert.ok((await page.locator('main').textContent()).includes(SUBJECT_EMAIL));
  // The timeline: each interaction with what it is held for and until when.
  const timeline = page.getByRole('table', { name: 'Interactions, newest first' });
  assert.equal(await timeline.locator('tbody tr').count(), 3);
  assert.match(await timeline.textContent(), /legal_compliance until \d{4}-\d{2}-\d{2} \(legal hold: kept at erasure\)/);
  assert.match(await timeline.textContent(), /support until \d{4}-\d{2}-\d{2}/);
  // Which exact notice text the person saw: its language and the start of its SHA-256.
  assert.match(await history.textContent(), /newsletter v3 \(en\)text 5b11ab05604f…/);
  assert.match(
    await history.locator('code.hash').first().getAttribute('title'),
    /5b11ab05604ffabf38ef6a4bcdc12d742156a197a05631c7534cada6035b4972/,
  );
  // Who accessed the person: the keys by name, without the console's own queue listings.
  const trail = page.getByRole('table', { name: 'Access to this person' });
  const accesses = await trail.locator('tbody tr').allTextContents();
  assert.equal(accesses.length, 50);
  assert.ok(accesses.some((row) => /test compliance \(compliance\)consents\.read/.test(row)), accesses.join('\n'));
  assert.ok(accesses.every((row) => /UTCtest (compliance|collector) \((compliance|collector)\)/.test(row)), accesses.join('\n'));
  assert.ok(accesses.every((row) => !row.includes('requests.list')), accesses.join('\n'));
  await assertAccessible('subject');
  await shot('subject');
});

test('exports download as JSON, as a CSV zip and as ISO 27560 consent records', async () => {
  const [json] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export JSON' }).click(),
  ]);
  const body = JSON.parse(await readFile(await json.path(), 'utf8'));
  assert.equal(body.subject.subject_id, SUBJECT_ID);
  assert.ok(body.interactions.length >= 2);
  const [csv] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Export CSV (zip)' }).click(),
  ]);
  assert.match(csv.suggestedFilename(), /\.zip$/);
  const zip = await readFile(await csv.path());
  assert.equal(zip.subarray(0, 2).toString('latin1'), 'PK');
  const [records] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Consent records (ISO 27560)' }).click(),
  ]);
  assert.equal(records.suggestedFilename(), 'consent-records-iso27560.jsonld');
  const graph = JSON.parse(await readFile(await records.path(), 'utf8'))['@graph'];
  assert.deepEqual(
    graph.map((record) => record['@type']),
    ['dpv:ConsentRecord', 'dpv:ConsentRecord', 'dpv:ConsentRecord', 'dpv:ConsentRecord'],
  );
});

test('processing is restricted and the restriction lifted', async () => {
  await page.getByRole('button', { name: 'Restrict processing' }).click();
  await page.getByRole('status').filter({ hasText: 'Processing restricted.' }).waitFor();
  assert.match(await page.locator('.panel').first().textContent(), /Restricted \(Art\. 18\)/);
  await page.getByRole('button', { name: 'Lift restriction' }).click();
  await page.getByRole('status').filter({ hasText: 'Restriction lifted.' }).waitFor();
  assert.match(await page.locator('.panel').first().textContent(), /Not restricted/);
});

test('erasure needs the typed subject id, warns of what is kept and which requests close, then shows the receipt', async () => {
  await page.getByRole('button', { name: 'Erase…' }).click();
  const dialog = page.getByRole('dialog', { name: 'Erase this person?' });
  await dialog.waitFor();
  // The counts are those of the person as the screen showed them.
  const counts = await dialog.locator('dl.erase-counts').textContent();
  assert.match(counts, /Identifiers1 identifier \(e-mail, phone\)/);
  assert.match(counts, /Traits2 traits/);
  assert.match(counts, /Interactions2 interactions/);
  const warnings = await dialog.getByRole('note').allTextContents();
  assert.ok(warnings.some((text) => /Kept under a legal hold: 1 interaction for legal_compliance \(legal obligation\) until \d{4}-\d{2}-\d{2}/.test(text)), warnings.join('\n'));
  assert.ok(warnings.some((text) => /1 open request for this person/.test(text)), warnings.join('\n'));
  const erase = dialog.getByRole('button', { name: 'Erase permanently' });
  assert.equal(await erase.isDisabled(), true);
  await dialog.getByLabel(`Type ${SUBJECT_ID} to confirm`).fill(`${SUBJECT_ID}x`);
  assert.equal(await erase.isDisabled(), true);
  await assertAccessible('erase dialog');
  await dialog.getByLabel(`Type ${SUBJECT_ID} to confirm`).fill(SUBJECT_ID);
  assert.equal(await erase.isDisabled(), false);
  await dialog.getByLabel(/refuse any future data about this id/).check();
  await shot('erase-confirm');
  await erase.click();
  await page.getByRole('heading', { name: 'Erasure receipt' }).waitFor();
  assert.match(await page.locator('.message').textContent(), new RegExp(`${SUBJECT_ID} has been erased`));
  const receipt = await page.getByLabel('Signed receipt').textContent();
  assert.equal(receipt.split('.').length, 3, 'a compact JWS');
  const deleted = await page.getByRole('table', { name: 'What was deleted' }).textContent();
  assert.match(deleted, /interactions2/);
  assert.match(deleted, /identifiers1/);
  assert.match(deleted, /traits2/);
  assert.match(await page.getByRole('table', { name: 'What is held, and until when' }).textContent(), /legal_compliancelegal obligation1\d{4}-\d{2}-\d{2}/);
  assert.match(await page.locator('dl.facts').textContent(), /Future data refusedYes/);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the receipt overflows by ${overflow}px`);
  await assertAccessible('receipt');
  await shot('erasure-receipt');
  // Afterwards the person is unknown.
  await page.goto(`${BASE}/console#/subjects/${encodeURIComponent(SUBJECT_ID)}`);
  // A reload drops the in-memory session: sign in again.
  await page.reload();
  await signIn(COMPLIANCE_KEY);
  await page.getByRole('status').filter({ hasText: 'No person with this id is held' }).waitFor();
});

test('the audit log is filtered, paged and verified', async () => {
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.getByRole('table', { name: 'Audit entries' }).waitFor();
  await page.getByRole('button', { name: 'Verify the chain' }).click();
  await page.getByText(/The audit log verifies: \d+ entries/).waitFor();
  await assertAccessible('audit');
  await shot('audit');
  // A question the API refuses shows its error; the next good one clears it.
  const day = new Date().toISOString().slice(0, 10);
  await page.getByLabel('Subject id').fill('not a valid id!');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('status').filter({ hasText: /./ }).waitFor();
  assert.match(await page.getByRole('status').getAttribute('class'), /error/);
  await page.getByLabel('Subject id').fill('');
  // A day not written as the console writes days is refused at its field.
  await page.getByLabel('To', { exact: true }).fill('12/06/2026');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('status').filter({ hasText: 'To must be a day written as YYYY-MM-DD' }).waitFor();
  assert.equal(await page.getByLabel('To', { exact: true }).getAttribute('aria-invalid'), 'true');
  // Today's entries are within `To` today (the whole day, not up to its last whole second).
  await page.getByLabel('To', { exact: true }).fill(day);
  await page.getByLabel('Action', { exact: true }).selectOption('subjects.erase');
  await page.getByRole('button', { name: 'Apply' }).click();
  // The filtered page replaces the unfiltered one (and the empty one of the refused question).
  await page.waitForFunction(() => {
    const shown = [...document.querySelectorAll('main table tbody tr')];
    return shown.length > 0 && shown.every((row) => row.textContent.includes('subjects.erase'));
  });
  const rows = page.getByRole('table', { name: 'Audit entries' }).locator('tbody tr');
  // Two erasures: one executed from the request queue, one from the person's screen.
  assert.equal(await rows.count(), 2);
  for (const text of await rows.allTextContents()) {
    assert.match(text, /subjects\.erase/);
  }
  assert.equal(await page.locator('#status').textContent(), '', 'the earlier error is gone');
  // Who acted, by the key's name and role.
  assert.match(await rows.first().textContent(), /test compliance \(compliance\)/);
  await page.getByLabel('To', { exact: true }).fill('');
  // Paging, 50 per page (the seeded run wrote more): the next page continues exactly where
  // this one ended, and back again. (Reading the log is itself audited, so new entries appear at
  // the top while paging.)
  await page.getByLabel('Action', { exact: true }).selectOption('');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.getByRole('button', { name: 'Older entries' }).waitFor();
  const seqs = async () => (await rows.locator('td:first-child').allTextContents()).map(Number);
  const first = await seqs();
  assert.equal(first.length, 50);
  await page.getByRole('button', { name: 'Older entries' }).click();
  await page.getByRole('button', { name: 'Newer entries' }).waitFor();
  const second = await seqs();
  assert.equal(second[0], first[49] - 1);
  await page.getByRole('button', { name: 'Newer entries' }).click();
  // The first page has no newer entries to go to: wait for it, not for a button both pages have.
  await page.getByRole('button', { name: 'Newer entries' }).waitFor({ state: 'detached' });
  assert.ok((await seqs())[0] >= first[0]);
});

test('a failed verification names the first invalid entry', async () => {
  // The server's chain is intact; the failure report is substituted to show how one reads.
  await page.route('**/v1/audit/verify', (route) =>
    route.fulfill({
      status: 200,
      contentType: 'application/json',
      body: JSON.stringify({ ok: false, entries: 41, first_invalid: 17, reason: 'hash_mismatch', detail: 'entry 17 does not hash to its stored hash', checkpoints: 0 }),
    }),
  );
  await page.getByRole('button', { name: 'Verify the chain' }).click();
  await page.getByText('The audit log does NOT verify. First invalid entry: #17.').waitFor();
  assert.match(await page.locator('.message.error').textContent(), /hash_mismatch/);
  await page.unroute('**/v1/audit/verify');
});

test('the policy and the record of processing are shown', async () => {
  await page.getByRole('link', { name: 'Policy' }).click();
  const activities = page.getByRole('table', { name: 'Processing activities' });
  await activities.waitFor();
  const text = await activities.textContent();
  assert.match(text, /marketing\.emailNewsletters and offers by e-mailconsent/);
  assert.match(text, /marketer \(segments\.query, segments\.export, insights\.query\)/);
  assert.match(await page.getByRole('table', { name: 'Roles' }).textContent(), /compliance/);
  await assertAccessible('policy');
  await shot('policy');
});

test('consent trends show exact counts as a chart beside their table, and download as CSV', async () => {
  await page.getByRole('link', { name: 'Consent trends' }).click();
  const totals = page.getByRole('table', { name: 'Totals per purpose' });
  await totals.waitFor();
  // The seeded person's statements went with their erasure (an earlier test): the six buyers'
  // grants remain. Purpose, grants, withdrawals, by GPC, objections, opt-in rate, GPC share.
  const marketing = totals.getByRole('row').filter({ has: page.getByRole('cell', { name: 'marketing', exact: true }) });
  assert.equal(await marketing.textContent(), 'marketing6000100.0 %—');
  const chart = page.getByRole('img', { name: /Consent statements and objections per ISO week/ });
  assert.equal(await chart.count(), 1);
  const lines = await page.evaluate(() => document.querySelectorAll('figure.chart polyline').length);
  assert.ok(lines >= 3, `a line per series: ${lines}`);
  const byPeriod = await page.getByRole('table', { name: 'Consent by period, purpose and notice' }).getByRole('row').allTextContents();
  assert.equal(byPeriod.length, 2, byPeriod.join(' | '));
  assert.match(byPeriod[1], /^\d{4}-W\d{2}marketingnewsletter v36000100\.0 %$/);
  const [file] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('button', { name: 'Download CSV' }).click(),
  ]);
  assert.match(file.suggestedFilename(), /^consents-\d{4}-\d{2}-\d{2}-\d{4}-\d{2}-\d{2}\.csv$/);
  const csv = await readFile(await file.path(), 'utf8');
  assert.match(csv.split('\n')[0], /^period,purpose,notice_id,notice_version,grants,withdrawals/);
  // A bad day is refused at its field.
  await page.getByLabel('From').fill('2026-13-01');
  await page.getByRole('button', { name: 'Show' }).click();
  assert.equal(await page.getByLabel('From').getAttribute('aria-invalid'), 'true');
  await page.getByLabel('From').fill('2026-01-01');
  await page.getByRole('button', { name: 'Show' }).click();
  await totals.waitFor();
  await assertAccessible('consent trends');
  await shot('consent-trends');
});

test('the keyboard reaches everything, with a visible focus', async () => {
  await page.goto(`${BASE}/console`);
  await page.reload();
  // Each screen moves focus to its heading, so a screen reader announces it.
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Sign in');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => {
    const element = document.activeElement;
    const style = getComputedStyle(element);
    return { label: element.labels?.[0]?.textContent, outline: style.outlineStyle, width: style.outlineWidth };
  });
  assert.equal(focused.label, 'API key');
  assert.notEqual(focused.outline, 'none');
  assert.equal(focused.width, '3px');
  await page.keyboard.press('Shift+Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.keyboard.press('Tab');
  await page.keyboard.type(COMPLIANCE_KEY);
  await page.keyboard.press('Enter');
  await page.getByRole('navigation', { name: 'Sections' }).waitFor();
  // The first screen fetches, then shows itself and takes the focus: wait for that, or it
  // takes the focus away from the link below (a race seen once in CI).
  await page.getByRole('heading', { level: 1, name: 'Requests' }).waitFor();
  await page.waitForFunction(() => document.activeElement.textContent === 'Requests');
  // Through the sections and to an action by keyboard alone.
  await page.getByRole('link', { name: 'Policy' }).focus();
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Policy' }).waitFor();
});

test('at 390 px wide nothing overflows the page', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const section of ['Requests', 'Subjects', 'Audit log', 'Consent trends', 'Policy']) {
    await page.getByRole('link', { name: section }).click();
    await page.getByRole('heading', { level: 1, name: section }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `${section} overflows by ${overflow}px`);
  }
  await page.getByRole('link', { name: 'Requests' }).click();
  await page.getByRole('table', { name: 'Request queue' }).waitFor();
  // The deadline columns, off screen at this width, come into view from the keyboard alone.
  const region = page.getByRole('region', { name: 'Request queue' });
  await region.focus();
  // Each arrow press scrolls a step (smoothly): press until the far end is reached.
  const position = () => region.evaluate((r) => [r.scrollLeft, r.scrollWidth - r.clientWidth]);
  for (let i = 0; i < 60; i += 1) {
    const [left, end] = await position();
    if (left >= end - 1) break;
    await page.keyboard.press('ArrowRight');
    await page.waitForFunction(([el, before]) => el.scrollLeft !== before, [await region.elementHandle(), left], { timeout: 2000 });
  }
  const inView = await page.evaluate(() => ['Due', 'Days left'].map((name) => {
    const header = [...document.querySelectorAll('th')].find((th) => th.textContent === name);
    const box = header.getBoundingClientRect();
    return box.left >= 0 && box.right <= window.innerWidth;
  }));
  assert.deepEqual(inView, [true, true], `scrolled to ${(await position()).join(' of ')}`);
  await shot('requests-390');
  await page.setViewportSize({ width: 1280, height: 860 });
});

test('a marketer sees only insights: a question answered as a chart with its intervals beside a table, and the budget left', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await signIn(MARKETER_KEY);
  await page.getByRole('heading', { level: 1, name: 'Insights' }).waitFor();
  const sections = await page.getByRole('navigation', { name: 'Sections' }).getByRole('link').allTextContents();
  assert.deepEqual(sections, ['Insights']);
  const budget = page.getByRole('table', { name: 'Privacy budget today' });
  assert.match(await budget.textContent(), /marketing/);
  // Weekly people over the last twelve weeks (the form's defaults).
  await page.getByRole('button', { name: 'Ask' }).click();
  const cells = page.getByRole('table', { name: 'Insight cells' });
  await cells.waitFor();
  const rows = await cells.getByRole('row').count();
  assert.ok(rows >= 13, `a row per week and the header: ${rows}`);
  assert.match(await cells.textContent(), /\d{4}-W\d{2}/);
  const chart = page.getByRole('img', { name: /People by week, with 95 % intervals/ });
  assert.equal(await chart.count(), 1);
  assert.equal(await page.locator('figure.chart polygon').count() >= 1, true, 'the interval band');
  assert.match(await page.locator('dl.facts').textContent(), /ε spent0\.1/);
  assert.match(await page.locator('dl.facts').textContent(), /ε left today0\.9/);
  await assertAccessible('insights');
  await shot('insights');
  // The same question again: the same answer, free.
  await page.getByRole('button', { name: 'Ask' }).click();
  await page.locator('dl.facts').filter({ hasText: 'the answer given earlier today' }).waitFor();
  // Grouped by channel without time: bars, cells only above the threshold.
  await page.getByLabel('Time buckets').selectOption('');
  await page.getByLabel('Group also by').selectOption('channel');
  await page.getByRole('button', { name: 'Ask' }).click();
  await page.locator('dl.facts').filter({ hasText: 'values fewer people have, after noise, are absent' }).waitFor();
  // At 390 px the chart fits the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `insights overflow by ${overflow}px`);
  await shot('insights-390');
  await page.setViewportSize({ width: 1280, height: 860 });
  // Typing a compliance address by hand does not open it.
  await page.goto(`${BASE}/console#/audit`);
  await page.reload();
  await signIn(MARKETER_KEY);
  await page.getByRole('heading', { level: 1, name: 'Insights' }).waitFor();
});

test('a role with nothing to do here sees nothing, and signing out forgets the session', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  await signIn(COLLECTOR_KEY);
  await page.getByRole('heading', { name: 'Nothing to show' }).waitFor();
  assert.equal(await page.getByRole('navigation', { name: 'Sections' }).getByRole('link').count(), 0);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in' }).waitFor();
  assert.equal(await page.locator('#nav').isHidden(), true);
});
