// Drives the Worker's upload page in Debian's Chromium (playwright-core, no browser download) for
// UploadPageTests. Usage: node browser.mjs <scenario> <workerUrl> <outDir> <file>...
//   upload     sign in by URL fragment, upload the files with the file input, wait for 100 %, screenshot,
//              download the first file, delete the last one
//   pause      upload one file with a throttled network, pause mid-upload, resume, finish
//   reload     upload one file with a throttled network, reload mid-upload, choose it again: it resumes
//   expired    open the page with the token in PAGE_TOKEN (expired) and read the error it shows
// The token comes from PAGE_TOKEN. Prints one JSON line with what the C# test asserts on.
import { mkdir } from "node:fs/promises";
import { basename, join } from "node:path";
import { chromium } from "playwright-core";

const [scenario, workerUrl, outDir, ...files] = process.argv.slice(2);
const token = process.env.PAGE_TOKEN;
const STEP_TIMEOUT = 120_000;
/** Upload throughput for the mid-upload scenarios (bytes/s): slow enough to act while a chunk is in flight. */
const THROTTLE = 16 * 1024 * 1024;

await mkdir(outDir, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const result = {};
try {
  const context = await browser.newContext({ viewport: { width: 1100, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT);
  const consoleErrors = [];
  page.on("console", (message) => { if (message.type() === "error") consoleErrors.push(message.text()); });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  page.on("dialog", (dialog) => dialog.accept());
  const tusRequests = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname.startsWith("/uploads")) {
      tusRequests.push({ method: request.method(), path: url.pathname, offset: request.headers()["upload-offset"] ?? null });
    }
  });

  await page.goto(new URL(`/#token=${token}`, workerUrl).href);
  result.urlAfterSignIn = page.url();

  if (scenario === "expired") {
    const error = page.locator("#error");
    await error.waitFor({ state: "visible" });
    result.error = await error.textContent();
  } else if (scenario === "upload") {
    await page.setInputFiles("#file-input", files);
    for (const file of files) await waitForDone(page, basename(file));
    result.progress = await page.locator("#uploads progress").evaluateAll((bars) => bars.map((bar) => bar.value));
    await page.locator("#files tbody tr").nth(files.length - 1).waitFor();
    result.listed = await listed(page);
    result.screenshot = join(outDir, "upload-page.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    await page.setViewportSize({ width: 375, height: 800 });
    result.screenshotNarrow = join(outDir, "upload-page-375.png");
    await page.screenshot({ path: result.screenshotNarrow, fullPage: true });
    result.scrollWidth375 = await page.evaluate(() => document.documentElement.scrollWidth);

    const first = basename(files[0]);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: `Download ${first}`, exact: true }).click(),
    ]);
    result.downloaded = join(outDir, `downloaded-${first}`);
    await download.saveAs(result.downloaded);

    const last = basename(files.at(-1));
    await page.getByRole("button", { name: `Delete ${last}`, exact: true }).click();
    await page.locator(`#files tbody tr[data-name="${last}"]`).waitFor({ state: "detached" });
    result.listedAfterDelete = await listed(page);
  } else if (scenario === "pause") {
    const name = basename(files[0]);
    await throttle(page, THROTTLE);
    await page.setInputFiles("#file-input", files[0]);
    await waitForPercent(page, name, 20);
    await page.getByRole("button", { name: `Pause ${name}`, exact: true }).click();
    result.pausedStatus = await status(page, name).textContent();
    result.screenshot = join(outDir, "upload-page-paused.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    const pausedAt = tusRequests.length;
    await page.waitForTimeout(1500); // paused: no request may go out meanwhile
    result.requestsWhilePaused = tusRequests.length - pausedAt;
    await page.getByRole("button", { name: `Resume ${name}`, exact: true }).click();
    await waitForDone(page, name);
    result.tusRequests = tusRequests;
  } else if (scenario === "reload") {
    const name = basename(files[0]);
    await throttle(page, THROTTLE);
    await page.setInputFiles("#file-input", files[0]);
    await waitForPercent(page, name, 25);
    result.screenshot = join(outDir, "upload-page-uploading.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    // Well into the upload: the bytes received so far are on the server, the rest is in flight.
    await waitForPercent(page, name, Number(process.env.RELOAD_AT_PERCENT ?? 60));
    result.beforeReload = tusRequests.splice(0);
    await page.reload();
    result.unfinishedAfterReload = await page.locator("#unfinished").textContent();
    await page.setInputFiles("#file-input", files[0]);
    await waitForDone(page, name);
    result.afterReload = tusRequests;
  } else {
    throw new Error(`unknown scenario ${scenario}`);
  }
  result.consoleErrors = consoleErrors;
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

function item(page, name) {
  return page.locator("#uploads li").filter({ has: page.locator(".upload-name", { hasText: name }) });
}

function status(page, name) {
  return item(page, name).locator(".upload-status");
}

async function waitForDone(page, name) {
  await item(page, name).and(page.locator(".done")).waitFor();
}

async function waitForPercent(page, name, percent) {
  const bar = item(page, name).locator("progress");
  await page.waitForFunction(([element, at]) => element.value >= at, [await bar.elementHandle(), percent], { polling: 50 });
}

async function listed(page) {
  return page.locator("#files tbody tr").evaluateAll((rows) => rows.map((row) => row.dataset.name));
}

/** Chromium's own network throttling (DevTools protocol): uploads are paced, bytes are unchanged. */
async function throttle(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond,
  });
}
