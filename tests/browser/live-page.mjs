/*
 * The real-browser test of the live page (issue 7), run by tests/75-browser.bats.
 *
 * Headless Chromium (Debian's, driven by playwright-core) opens the page, waits for it to go
 * live, publishes commits and a plain JSON message, checks what the page renders, has the
 * server side of the page's EventSource stream killed, publishes more commits while the page
 * reconnects, and checks that every commit ends up shown exactly once. Then, optionally, the
 * gap notice: a second kill, and the page kept away until its cursor has left the history. The
 * page runs under the server's own Content-Security-Policy: nothing is bypassed.
 *
 * Environment:
 *   GPS_PAGE_URL     the page, e.g. http://127.0.0.1:2069/json/git/demo (required)
 *   GPS_PUBLISH_URL  where commits are POSTed (default: GPS_PAGE_URL)
 *   GPS_KILL_CMD     a bash command that kills the server side of the page's stream; it must
 *                    exit 0 only if it killed something (required)
 *   GPS_SCREENSHOT   where to save a PNG of the page at the end (optional)
 *   GPS_RESULT       where to write the JSON summary (default: stdout)
 *   GPS_CHROMIUM     the browser (default /usr/bin/chromium)
 *   GPS_WAIT_MS      bound of each wait (default 15000)
 *   GPS_GAP_FILLERS  then check the gap notice: publish this many messages of
 *   GPS_GAP_BYTES    this many bytes while the page's reconnect is held, enough to push its
 *                    cursor out of the history ring (default 0: no gap check)
 *
 * Exit status: 0 when every check passed, 1 otherwise (the reason and the page's state on
 * stderr), 2 on a usage error. The summary is written in both of the first two cases.
 */
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { write_result } from './result.mjs';

const env = process.env;
const page_url = env.GPS_PAGE_URL;
const publish_url = env.GPS_PUBLISH_URL || page_url;
const kill_cmd = env.GPS_KILL_CMD;
const wait_ms = Number(env.GPS_WAIT_MS || 15000);
const gap_fillers = Number(env.GPS_GAP_FILLERS || 0);
const gap_bytes = Number(env.GPS_GAP_BYTES || 16384);
/* The whole run is bounded too, in case a step hangs outside playwright's own timeouts. */
const TOTAL_MS = 4 * wait_ms + 30000;
/* After the last commit shows, how long to watch for a late duplicate. */
const SETTLE_MS = 700;
/* The screenshot (and the README's copy of it) is this size. */
const VIEWPORT = { width: 1000, height: 700 };

if (!page_url || !kill_cmd) {
	console.error('usage: GPS_PAGE_URL=... GPS_KILL_CMD=... node live-page.mjs');
	process.exit(2);
}

const t0 = Date.now();
const log = (...a) => console.error(`[${((Date.now() - t0) / 1000).toFixed(2)}s]`, ...a);
const summary = { ok: false, steps: [] };
const step = (what) => {
	summary.steps.push(what);
	log(what);
};

class check_failed extends Error {}
function expect(cond, what)
{
	if (!cond)
		throw new check_failed(what);
}

/* page.waitForFunction, failing with what was awaited rather than a bare timeout. */
async function wait_for(page, what, fn, arg)
{
	try {
		await page.waitForFunction(fn, arg);
	} catch (e) {
		const why = e.message.split('\n')[0];
		throw new check_failed(`no ${what} within ${wait_ms} ms (${why})`);
	}
}

/* A commit message in the hook's format (PROTOCOL 10.1). */
function commit(author, message, files, extra = {})
{
	const hash = randomBytes(20).toString('hex');
	const email = author.split(' ')[0].toLowerCase() + '@example.org';
	const changes = files.length === 1 ? files[0] : `${files.length} files`;
	return {
		commit: {
			repository: 'git', project: 'demo', ref: 'refs/heads/main', hash,
			shortHash: hash.slice(0, 7), author, email, date: git_date(new Date()),
			log: message, files, changes, ...extra,
		},
	};
}

/* git's default date format: "Thu Nov 26 16:27:06 2026 +0000". */
function git_date(d)
{
	const p = d.toUTCString().split(' '); /* Thu, 26 Nov 2026 16:27:06 GMT */
	return `${p[0].slice(0, 3)} ${p[2]} ${Number(p[1])} ${p[4]} ${p[3]} +0000`;
}

/*
 * POST one message on a connection of its own (agent: false, Connection: close): a pooled
 * keep-alive connection could be reused just as the server closes it for idling. Resolves to
 * the answer's X-Cursor.
 */
function publish(msg)
{
	const body = Buffer.from(JSON.stringify(msg));
	const headers = {
		'Content-Type': 'application/json', 'Content-Length': body.length,
		Connection: 'close',
	};
	return new Promise((resolve, reject) => {
		const opts = { method: 'POST', agent: false, timeout: wait_ms, headers };
		const req = http.request(publish_url, opts, (res) => {
			let text = '';
			res.setEncoding('utf8');
			res.on('data', (d) => (text += d));
			res.on('end', () => {
				const why = `publish answered ${res.statusCode}: ${text.trim()}`;
				if (res.statusCode === 200)
					resolve(res.headers['x-cursor'] ?? null);
				else
					reject(new check_failed(why));
			});
		});
		req.on('timeout', () => req.destroy(new Error(`no answer in ${wait_ms} ms`)));
		req.on('error', (e) => reject(new check_failed(`publish failed: ${e.message}`)));
		req.end(body);
	});
}

function kill_stream()
{
	const opts = { timeout: wait_ms, encoding: 'utf8' };
	return execFileSync('bash', ['-c', kill_cmd], opts).trim();
}

async function screenshot(page)
{
	if (!env.GPS_SCREENSHOT)
		return;
	mkdirSync(dirname(env.GPS_SCREENSHOT), { recursive: true });
	await page.screenshot({ path: env.GPS_SCREENSHOT });
	summary.screenshot = env.GPS_SCREENSHOT;
}

/* What the page shows, read from its DOM (a big <pre> cut short). */
function read_page(page)
{
	return page.evaluate(() => {
		const text = (a, sel) => a.querySelector(sel)?.textContent ?? null;
		const filler = (a) => {
			try {
				return JSON.parse(text(a, 'pre')).filler ?? null;
			} catch (e) {
				return null;
			}
		};
		const msg = (a) => ({
			cls: a.className,
			cursor: a.dataset.cursor ?? null,
			project: text(a, '.project'),
			ref: text(a, '.ref'),
			hash: text(a, '.hash'),
			author: text(a, '.author'),
			subject: text(a, '.subject'),
			files: [...a.querySelectorAll('.files li')].map((li) => li.textContent),
			time: a.querySelector('time.time')?.getAttribute('datetime') ?? null,
			missed: a.dataset.missed ?? null,
			pre: text(a, 'pre')?.slice(0, 300) ?? null,
			filler: filler(a),
		});
		return {
			state: document.body.dataset.state,
			state_text: document.getElementById('state').textContent,
			path: document.getElementById('path').textContent,
			title: document.title,
			states: window.gps_states.slice(),
			violations: window.gps_violations.slice(),
			imgs: document.querySelectorAll('#messages img').length,
			msgs: [...document.querySelectorAll('#messages > article.msg')].map(msg),
		};
	});
}

/* Every shown commit's count by short hash. */
function count_hashes(msgs)
{
	const n = {};
	for (const m of msgs)
		if (m.cls.split(' ').includes('commit'))
			n[m.hash] = (n[m.hash] || 0) + 1;
	return n;
}

/*
 * Record every change of the connection state (a MutationObserver on the whole document also
 * sees <body> once the parser creates it) and every CSP violation, from before the page's own
 * script runs. Init scripts are not subject to the page's CSP.
 */
function recorder()
{
	window.gps_states = [];
	window.gps_violations = [];
	const states = window.gps_states;
	new MutationObserver(() => {
		const s = document.body?.dataset.state;
		if (s && s !== states[states.length - 1])
			states.push(s);
	}).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state'] });
	document.addEventListener('securitypolicyviolation', (e) =>
		window.gps_violations.push(`${e.violatedDirective} ${e.blockedURI}`));
}

/* Whether the page is live and shows every one of the short hashes HS. */
function shows_all_live(hs)
{
	const shown = [...document.querySelectorAll('#messages .commit .hash')]
		.map((e) => e.textContent);
	return document.body.dataset.state === 'live' && hs.every((h) => shown.includes(h));
}

/* The first part: load, go live, show a commit and JSON, survive a killed stream. */
async function resume_check(page, streams, errors)
{
	const res = await page.goto(page_url, { waitUntil: 'domcontentloaded' });
	summary.status = res.status();
	summary.content_type = res.headers()['content-type'] ?? null;
	summary.csp = res.headers()['content-security-policy'] ?? null;
	expect(res.status() === 200, `the page answered ${res.status()}`);
	step('page loaded');

	await wait_for(page, 'live state', () => document.body.dataset.state === 'live');
	step('live');

	const first = commit('Ada Lovelace', 'Frontend: serve the live page to browsers\n\n' +
			     'A browser asking for text/html gets frontend/page.html.',
			     ['frontend/page.html', 'frontend/stream.c']);
	summary.first = { hash: first.commit.shortHash, cursor: await publish(first) };
	await wait_for(page, 'first commit', shows_all_live, [first.commit.shortHash]);
	step('first commit shown');

	summary.note_cursor = await publish({ note: 'not a commit', n: [1, 2] });
	await wait_for(page, 'plain JSON', () => document.querySelector('#messages .json pre'));
	step('plain JSON shown');
	expect(streams.length === 1, `${streams.length} EventSource requests before the kill`);

	/* The stream is idle now; the kill command finds and kills its frontend. */
	summary.kill = kill_stream();
	step(`killed: ${summary.kill}`);
	await wait_for(page, 'reconnecting state',
		       () => window.gps_states.includes('reconnecting'));
	step('page noticed, reconnecting');

	/* Published while the page waits out its retry delay: only a resume can bring them. */
	const many = Array.from({ length: 20 }, (_, k) => `tests/browser/case-${k}.txt`);
	const more = [
		commit('Grace Hopper', 'Page: show a gap notice when history was lost',
		       ['frontend/page.html']),
		commit('Ada Lovelace', 'Merge branch \'browser-test\'', ['tests/75-browser.bats'],
		       { merge: 'abc1234 def5678' }),
		commit('Mallory', '<img src=x onerror="document.title=\'pwned\'"> & <b>bold</b>',
		       ['a<b>.c']),
		commit('Grace Hopper', 'Docs: a screenshot of the live page',
		       ['README.md', 'doc/live-page.png']),
		commit('Alan Turing', 'Tests: 75-browser kills the stream, counts commits', many),
	];
	summary.more = [];
	for (const c of more)
		summary.more.push({ hash: c.commit.shortHash, cursor: await publish(c) });
	summary.published_while = await page.evaluate(() => document.body.dataset.state);
	step(`published ${more.length} more while the page was ${summary.published_while}`);

	const all = [first, ...more].map((c) => c.commit.shortHash);
	await wait_for(page, 'every commit, live again', shows_all_live, all);
	step('all commits shown, live again');
	await page.waitForTimeout(SETTLE_MS);
	await finish(page, streams);

	const p = summary.page;
	const counts = (summary.counts = count_hashes(p.msgs));
	for (const h of all)
		expect(counts[h] === 1, `commit ${h} shown ${counts[h] ?? 0} times`);
	expect(Object.keys(counts).length === all.length,
	       `unexpected commits shown: ${JSON.stringify(counts)}`);
	const cursors = p.msgs.map((m) => m.cursor).filter((c) => c);
	expect(new Set(cursors).size === cursors.length, 'a cursor is shown twice');
	expect(p.msgs[0].hash === all[all.length - 1], 'the newest commit is not on top');
	expect(p.state === 'live' && p.state_text === 'live',
	       `state ${p.state}, shown as ${p.state_text}`);
	expect(p.imgs === 0 && p.title.indexOf('pwned') < 0,
	       'a commit subject was parsed as HTML');
	expect(p.violations.length === 0, `CSP violations: ${p.violations.join(', ')}`);
	expect(errors.length === 0, `page errors: ${errors.join(' | ')}`);
	expect(streams.length === 2, `${streams.length} EventSource requests, not 2`);
}

/* Take what the page shows and how its streams were asked for into the summary. */
async function finish(page, streams)
{
	summary.page = await read_page(page);
	if (summary.first)
		summary.first.shown = summary.page.msgs.find((m) => m.hash === summary.first.hash);
	summary.streams = [];
	for (const r of streams) {
		const h = await r.allHeaders();
		summary.streams.push({
			url: r.url(), accept: h.accept ?? null,
			last_event_id: h['last-event-id'] ?? null,
		});
	}
}

/*
 * The gap notice (PROTOCOL 3.4 as an SSE "gap" event): kill the stream again and hold the
 * page's reconnect (routing its EventSource request) until enough has been published that its
 * Last-Event-ID is no longer held. The page must show one .gap saying how many it missed, then
 * the held messages: so the oldest filler shown is number missed + 1, and the newest is the last.
 */
async function gap_check(page, streams)
{
	const g = (summary.gap = { ok: false });
	const path = new URL(page_url).pathname;
	let release;
	const held = new Promise((r) => {
		release = r;
	});
	await page.route((u) => u.pathname === path, async (route) => {
		if (route.request().resourceType() === 'eventsource')
			await held;
		await route.continue();
	});
	g.kill = kill_stream();
	step(`killed again: ${g.kill}`);
	await wait_for(page, 'second reconnecting state',
		       () => window.gps_states.filter((s) => s === 'reconnecting').length === 2);
	for (let n = 1; n <= gap_fillers; n++)
		await publish({ filler: n, pad: 'x'.repeat(gap_bytes) });
	step(`published ${gap_fillers} fillers of ${gap_bytes} bytes; releasing the reconnect`);
	release();
	await wait_for(page, 'gap notice and last filler', (n) =>
		document.body.dataset.state === 'live' &&
		document.querySelector('#messages .gap') &&
		[...document.querySelectorAll('#messages .json pre')]
			.some((e) => e.textContent.includes(`"filler": ${n},`)), gap_fillers);
	step('gap notice shown, live again');
	await page.waitForTimeout(SETTLE_MS);
	const msgs = (await read_page(page)).msgs;
	g.streams = streams.length;
	g.gaps = msgs.filter((m) => m.cls === 'msg gap').map((m) => m.missed);
	/* Newest first: the fillers the page got, then the gap notice that came before them. */
	const at = msgs.findIndex((m) => m.cls === 'msg gap');
	g.fillers = msgs.slice(0, Math.max(at, 0)).map((m) => m.filler);
	expect(g.gaps.length === 1, `${g.gaps.length} gap notices shown`);
	const missed = (g.missed = Number(g.gaps[0]));
	expect(missed > 0, `the gap notice says ${g.gaps[0]} missed`);
	const want = [];
	for (let n = gap_fillers; n > missed; n--)
		want.push(n);
	expect(JSON.stringify(g.fillers) === JSON.stringify(want),
	       `after a gap of ${missed}, fillers ${g.fillers.join(',')} shown (newest first)`);
	g.ok = true;
}

async function run(browser)
{
	const context = await browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 });
	await context.addInitScript(recorder);
	const page = await context.newPage();
	page.setDefaultTimeout(wait_ms);
	const streams = [];
	const errors = [];
	page.on('request', (r) => {
		if (r.resourceType() === 'eventsource')
			streams.push(r);
	});
	page.on('pageerror', (e) => errors.push(String(e)));
	/* A stream cut by the kill is a network error, the one kind of console error expected. */
	const cut = 'Failed to load resource: net::ERR_';
	page.on('console', (m) => {
		if (m.type() === 'error' && !m.text().startsWith(cut))
			errors.push(m.text());
	});
	summary.streams = [];
	summary.errors = errors;

	try {
		await resume_check(page, streams, errors);
		summary.ok = true;
		await screenshot(page);
		if (gap_fillers > 0)
			await gap_check(page, streams);
	} catch (e) {
		summary.error = e instanceof check_failed ? e.message : String(e.stack || e);
		/* A failed gap check keeps what the first part saw, for the tests of that part. */
		try {
			if (summary.ok)
				(summary.gap ??= {}).page = await read_page(page);
			else
				await finish(page, streams);
		} catch (e2) {
			summary.error += ` (and reading the page failed: ${e2.message})`;
		}
	}
	if (!summary.screenshot)
		await screenshot(page);
	await context.close();
}

const timer = setTimeout(() => {
	console.error(`live-page.mjs: still running after ${TOTAL_MS} ms; giving up`);
	process.exit(1);
}, TOTAL_MS);
const browser = await chromium.launch({
	executablePath: env.GPS_CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox'],
});
try {
	await run(browser);
} finally {
	await browser.close();
	clearTimeout(timer);
}
write_result(summary);
if (summary.error)
	console.error(`live-page.mjs: FAILED: ${summary.error}`);
process.exit(summary.ok && (gap_fillers === 0 || summary.gap?.ok) ? 0 : 1);
