// Drives the Streamlit UI in Debian's headless Chromium (playwright-core from tests/ui's
// lockfile), as a person would: for each visit of a plan, open the page, fill fields, press the
// submit button, wait for a text, and report what the page shows. test_browser.py judges it.
//
// Usage: node browser.js PLAN.json   (prints one JSON line: {"visits": [...]})
// A plan: {"chromium": "/usr/bin/chromium", "timeout_ms": 20000, "visits": [{"name", "url",
//   "wait_form": true, "select": {LABEL: OPTION}, "number": {LABEL: VALUE}, "submit": BUTTON,
//   "submits": N, "expect": TEXT, "screenshot": PATH}]}
// Each visit reports {name, ok, error, elapsed_ms, text (the page's text), metrics {label:
// value}, reasons [text], alerts [text], labels [field labels], logs [browser errors]}.
"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

async function idle(page, timeout) {
  // Streamlit shows its status widget ("Running...") while the script runs.
  await page.waitForFunction(() => !document.querySelector('[data-testid="stStatusWidget"]'),
                             null, { timeout });
}

async function chooseOption(page, label, option, timeout) {
  const box = page.locator('[data-testid="stSelectbox"]').filter({
    has: page.locator("label", { hasText: label }) });
  await box.first().click({ timeout });
  await page.getByRole("option", { name: option, exact: true }).click({ timeout });
}

async function report(page) {
  return page.evaluate(() => {
    const all = (sel) => Array.from(document.querySelectorAll(sel));
    const text = (e) => (e.innerText || "").trim();
    const metrics = {};
    for (const m of all('[data-testid="stMetric"]')) {
      const l = m.querySelector('[data-testid="stMetricLabel"]');
      const v = m.querySelector('[data-testid="stMetricValue"]');
      if (l && v) metrics[text(l)] = text(v);
    }
    return {
      text: text(document.body),
      metrics,
      reasons: all('[data-testid="stMarkdownContainer"] ol li').map(text),
      alerts: all('[data-testid="stNotification"], [role="alert"]').map(text),
      labels: all('[data-testid="stWidgetLabel"]').map(text),
    };
  });
}

async function visit(ctx, v, timeout) {
  const page = await ctx.newPage();
  const logs = [];
  page.on("console", (m) => { if (m.type() === "error") logs.push("console: " + m.text()); });
  page.on("pageerror", (e) => logs.push("pageerror: " + e.message));
  const t0 = Date.now();
  const out = { name: v.name, ok: false, error: null, logs };
  try {
    await page.goto(v.url, { waitUntil: "load", timeout });
    if (v.wait_form) {
      await page.getByRole("button", { name: v.submit }).waitFor({ timeout });
      await idle(page, timeout);
    }
    for (const [label, option] of Object.entries(v.select || {})) {
      await chooseOption(page, label, option, timeout);
    }
    for (const [label, value] of Object.entries(v.number || {})) {
      const input = page.getByLabel(label, { exact: true });
      await input.fill(String(value), { timeout });
      await input.press("Tab");
    }
    for (let i = 0; i < (v.submits || 0); i++) {
      await idle(page, timeout);
      await page.getByRole("button", { name: v.submit }).click({ timeout });
      await page.waitForTimeout(300);
      await idle(page, timeout);
    }
    await page.getByText(v.expect).first().waitFor({ timeout });
    await idle(page, timeout);
    out.ok = true;
  } catch (e) {
    out.error = String(e.message || e).split("\n")[0];
  }
  out.elapsed_ms = Date.now() - t0;
  Object.assign(out, await report(page).catch((e) => ({ text: "", error2: String(e) })));
  // Streamlit scrolls inside its own container: bring the awaited text into the picture.
  await page.getByText(v.expect).first().scrollIntoViewIfNeeded({ timeout: 2000 }).catch(() => {});
  if (v.screenshot) await page.screenshot({ path: v.screenshot, fullPage: true }).catch(() => {});
  await page.close();
  return out;
}

(async () => {
  const plan = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const timeout = plan.timeout_ms || 20000;
  const udd = fs.mkdtempSync(path.join(os.tmpdir(), "credito-ui-chromium-"));
  let ctx = null;
  const visits = [];
  try {
    // The flags Chromium needs here (streamlit-harness/example/drive.js).
    ctx = await chromium.launchPersistentContext(udd, {
      executablePath: plan.chromium || "/usr/bin/chromium",
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage"],
      viewport: { width: 1200, height: 1000 },
    });
    for (const v of plan.visits) visits.push(await visit(ctx, v, timeout));
  } catch (e) {
    visits.push({ name: "chromium", ok: false, error: String(e.message || e).split("\n")[0] });
  } finally {
    if (ctx) await ctx.close().catch(() => {});
    fs.rmSync(udd, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify({ visits }) + "\n");
})();
