/*
 * The real-browser test of README 3.13 (issue 14, item 3), run by tests/75-browser.bats.
 *
 * A page of another origin tries to publish through the user's trusted address: this script
 * serves it from a tiny HTTP server of its own on 127.0.0.1 (a port the service does not use,
 * opened as http://localhost:PORT, so the page is another site), and headless Chromium opens
 * it. Its script sends, for each target, fetch(target, { method: 'POST', mode: 'no-cors',
 * body }), the request a page may send anywhere without asking, whose answer it cannot read.
 * Chromium adds Origin and Sec-Fetch-Site itself; the page cannot remove them. What the
 * browser sent and what the server answered (the network layer sees the status the page
 * cannot) go into the summary; whether anything was stored is for the caller to look at.
 *
 * Environment:
 *   GPS_TARGETS      space-separated URLs to POST to (required)
 *   GPS_PAGE_PORT    the page server's port on 127.0.0.1 (required)
 *   GPS_RESULT       where to write the JSON summary (default: stdout)
 *   GPS_CHROMIUM     the browser (default /usr/bin/chromium)
 *   GPS_WAIT_MS      bound of each wait (default 15000)
 *
 * Exit status: 0 when the page ran and every fetch settled, 1 otherwise (the reason on
 * stderr), 2 on a usage error. The summary is written in both of the first two cases.
 */
import { chromium } from 'playwright-core';
import http from 'node:http';
import { write_result } from './result.mjs';

const env = process.env;
const targets = (env.GPS_TARGETS || '').split(/\s+/).filter((t) => t);
const page_port = Number(env.GPS_PAGE_PORT || 0);
const wait_ms = Number(env.GPS_WAIT_MS || 15000);

if (targets.length === 0 || !page_port) {
	console.error('usage: GPS_TARGETS="url..." GPS_PAGE_PORT=port node no-cors.mjs');
	process.exit(2);
}

const page_origin = `http://localhost:${page_port}`;
/* The page: one no-cors POST per target, in turn; the outcome of each in window.results. */
const page_html = `<!doctype html>
<title>another origin</title>
<script>
window.results = [];
(async () => {
	for (const [i, url] of ${JSON.stringify(targets)}.entries()) {
		const body = JSON.stringify({ from: 'a page of another origin', target: i });
		try {
			const r = await fetch(url, { method: 'POST', mode: 'no-cors', body });
			window.results.push({ url, settled: 'resolved', type: r.type, status: r.status });
		} catch (e) {
			window.results.push({ url, settled: 'rejected', error: String(e) });
		}
	}
	window.done = true;
})();
</script>
`;

const summary = { ok: false, page_origin, fetches: [], network: [] };
const server = http.createServer((req, res) => {
	res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
	res.end(page_html);
});
await new Promise((resolve, reject) => {
	server.once('error', reject);
	server.listen(page_port, '127.0.0.1', resolve);
});
const timer = setTimeout(() => {
	console.error('no-cors: the whole run took too long');
	process.exit(1);
}, 3 * wait_ms);

const browser = await chromium.launch({
	executablePath: env.GPS_CHROMIUM || '/usr/bin/chromium',
	args: ['--no-sandbox'],
});
try {
	const page = await browser.newPage();
	page.setDefaultTimeout(wait_ms);
	/* what left the browser for each target, and the status the network layer got back */
	page.on('requestfinished', async (req) => {
		if (!targets.includes(req.url()))
			return;
		const resp = await req.response();
		const h = await req.allHeaders();
		summary.network.push({
			url: req.url(),
			method: req.method(),
			origin: h.origin ?? null,
			sec_fetch_site: h['sec-fetch-site'] ?? null,
			sec_fetch_mode: h['sec-fetch-mode'] ?? null,
			content_type: h['content-type'] ?? null,
			status: resp ? resp.status() : null,
			body: resp ? (await resp.text().catch(() => null)) : null,
		});
	});
	page.on('requestfailed', (req) => {
		if (targets.includes(req.url()))
			summary.network.push({ url: req.url(), failed: req.failure()?.errorText });
	});
	await page.goto(`${page_origin}/`);
	await page.waitForFunction(() => window.done === true);
	summary.fetches = await page.evaluate(() => window.results);
	/* requestfinished may come a moment after the fetch settled in the page */
	for (let i = 0; i < 50 && summary.network.length < targets.length; i++)
		await new Promise((r) => setTimeout(r, 100));
	summary.ok = summary.fetches.length === targets.length &&
		     summary.network.length === targets.length;
} catch (e) {
	summary.error = e.message;
	console.error(`no-cors: ${e.message}`);
} finally {
	await browser.close();
	server.close();
	clearTimeout(timer);
}
write_result(summary);
process.exit(summary.ok ? 0 : 1);
