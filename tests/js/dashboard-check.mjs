#!/usr/bin/env node
// Loads a web page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core)
// and checks it as a person would see it:
//   node dashboard-check.mjs <url> <screenshot.png> <expected-text>...
// Waits (up to 15 s, polling the DOM) until every expected text is in document.body.innerText,
// writes a full-page PNG screenshot (also on failure, when the page loaded), prints what it
// found, and exits 1 naming each problem: a console error, an uncaught page error, a failed
// request (network failure, or a response with status >= 400), a text that never appeared, or a
// page that did not load. Chromium fetches /favicon.ico by itself and logs a console error when it
// 404s: serve one, or put <link rel="icon" href="data:,"> in the page. Exit 2: usage. Env: DASHBOARD_TIMEOUT_MS (default 15000),
// CHROMIUM (default /usr/bin/chromium), DASHBOARD_LOCALE (the browser's language, default zh-CN).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TEXT_TIMEOUT_MS = Number(process.env.DASHBOARD_TIMEOUT_MS || 15000);
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const LOCALE = process.env.DASHBOARD_LOCALE || 'zh-CN';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function main(argv) {
  const [url, shot, ...texts] = argv;
  if (!url || !shot || texts.length === 0) {
    console.error('usage: node dashboard-check.mjs <url> <screenshot.png> <expected-text>...');
    return 2;
  }
  const problems = [];
  // A fresh profile each run: Playwright passes it to Chromium as --user-data-dir.
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'yilian-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: EXECUTABLE,
      headless: true,
      args: ARGS,
      viewport: { width: 1280, height: 800 },
      locale: LOCALE,
      timeout: 30000,
    });
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const loc = msg.location();
      const where = loc && loc.url ? ` (${loc.url}${loc.lineNumber ? `:${loc.lineNumber + 1}` : ''})` : '';
      problems.push(`console error: ${msg.text()}${where}`);
    });
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('requestfailed', (req) => problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText ?? 'failed'}`));
    page.on('response', (res) => {
      if (res.status() >= 400) problems.push(`HTTP ${res.status()} ${res.statusText()}: ${res.request().method()} ${res.url()}`);
    });

    let loaded = false;
    try {
      const res = await page.goto(url, { waitUntil: 'load', timeout: TEXT_TIMEOUT_MS });
      loaded = true;
      console.log(`loaded ${url}: HTTP ${res ? res.status() : '-'}, title "${await page.title()}"`);
    } catch (e) {
      problems.push(`page did not load: ${e.message.split('\n')[0]}`);
    }

    if (loaded) {
      const bodyHas = (wanted) => {
        const body = document.body ? document.body.innerText : '';
        return wanted.every((t) => body.includes(t));
      };
      try {
        await page.waitForFunction(bodyHas, texts, { timeout: TEXT_TIMEOUT_MS, polling: 100 });
      } catch {
        // reported per text below
      }
      // Let requests the page started settle, so their failures are seen (bounded, event-driven).
      await page.waitForLoadState('networkidle', { timeout: 5000 }).catch(() => {});
      const body = await page.evaluate(() => (document.body ? document.body.innerText : '')).catch(() => '');
      for (const t of texts) {
        if (body.includes(t)) console.log(`found "${t}"`);
        else problems.push(`text not found within ${TEXT_TIMEOUT_MS / 1000} s: "${t}"`);
      }
      if (texts.some((t) => !body.includes(t))) {
        const snippet = body.replace(/\s+/g, ' ').trim();
        console.log(`page text (${snippet.length} chars): ${snippet.slice(0, 400)}${snippet.length > 400 ? '…' : ''}`);
      }
      fs.mkdirSync(path.dirname(path.resolve(shot)), { recursive: true });
      await page.screenshot({ path: shot, fullPage: true });
      const size = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]);
      console.log(`screenshot ${shot} (${size[0]}x${size[1]} CSS px, full page)`);
    }
  } catch (e) {
    problems.push(`browser: ${e.message.split('\n')[0]}`);
  } finally {
    if (context) await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }

  for (const p of problems) console.log(`FAIL ${p}`);
  console.log(`dashboard: ${problems.length ? `FAIL (${problems.length} problem${problems.length > 1 ? 's' : ''})` : 'ok'} ${url}`);
  return problems.length ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
