// Drives the Worker's upload page (Uppy's Dashboard) in Debian's Chromium (playwright-core, no browser
// download) for UploadPageTests. Usage: node browser.mjs <scenario> <workerUrl> <outDir> <file>...
//   upload        sign in by URL fragment, drop the files on the Dashboard at once, wait until all are done,
//                 audit the page with axe-core, screenshot (desktop, phone), download the first, delete the last
//   pause         upload one file with a throttled network, pause it mid-upload, resume, finish
//   reload        upload one file with a throttled network and reload mid-upload; a file small enough for
//                 Golden Retriever's storage goes on by itself, a larger one is asked for (RESELECT=1 chooses it
//                 again), then it finishes
//   two-users     A's upload is cut off with the tab's session; B (PAGE_TOKEN_2) signs in on the same browser and is
//                 not offered A's file; A signs in again and the upload goes on
//   refused       choose one file whose name is refused (by the page or the service) and read the error shown
//   expired       open the page with the token in PAGE_TOKEN (expired) and read the error it shows
// The token comes from PAGE_TOKEN. Prints one JSON line with what the C# test asserts on.
import { mkdir, readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, join } from "node:path";
import { chromium } from "playwright-core";

const [scenario, workerUrl, outDir, ...files] = process.argv.slice(2);
const token = process.env.PAGE_TOKEN;
const STEP_TIMEOUT = 120_000;
/** Upload throughput for the mid-upload scenarios (bytes/s): slow enough to act while a request is in flight. */
const THROTTLE = Number(process.env.THROTTLE ?? 16 * 1024 * 1024);
const axeSource = await readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

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
    if (url.pathname.startsWith("/uploads") && request.method() !== "OPTIONS") { // the page reads Tus-Max-Size with OPTIONS
      tusRequests.push({ method: request.method(), path: url.pathname, offset: request.headers()["upload-offset"] ?? null });
    }
  });

  await page.goto(new URL(`/#token=${token}`, workerUrl).href);
  result.urlAfterSignIn = page.url();

  if (scenario === "expired") {
    const error = page.locator("#error");
    await error.waitFor({ state: "visible" });
    result.error = await error.textContent();
  } else if (scenario === "two-users") {
    // A's upload is cut off when the tab's session ends (sessionStorage cleared, as closing the tab does); B
    // signs in on the same browser and must not be offered A's file; A signs in again and it goes on.
    const name = basename(files[0]);
    await throttle(page, THROTTLE);
    await choose(page, files[0]);
    await waitForPercent(page, 30);
    result.beforeReload = tusRequests.splice(0);
    await page.evaluate(() => sessionStorage.clear());
    await page.reload();
    await signIn(page, process.env.PAGE_TOKEN_2);
    await page.locator("#files-status").filter({ hasText: "No files yet." }).waitFor();
    await page.waitForTimeout(1000); // Golden Retriever restores asynchronously: give it time to (wrongly) show A's file
    result.itemsShownToB = await page.locator(".uppy-Dashboard-Item").count();
    result.screenshot = join(outDir, "upload-page-other-user.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, token);
    await throttle(page, THROTTLE);
    await waitForDone(page, name);
    result.afterReload = tusRequests;
  } else if (scenario === "refused") {
    await choose(page, files[0]);
    const error = page.locator("#error");
    await error.waitFor({ state: "visible" });
    result.error = await error.textContent();
    const entry = item(page, basename(files[0]));
    result.itemFailed = (await entry.count()) === 0 ? null : await entry.evaluate((element) => element.classList.contains("is-error"));
    result.tusRequests = tusRequests;
    result.screenshot = join(outDir, "upload-page-refused.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
  } else if (scenario === "upload") {
    await drop(page, files);
    for (const file of files) await waitForDone(page, basename(file));
    await page.locator("#files tbody tr").nth(files.length - 1).waitFor();
    result.listed = await listed(page);
    result.listedSizes = await page.locator("#files tbody tr td:nth-child(2)").allTextContents();
    result.accessibility = await audit(page);
    result.screenshot = join(outDir, "upload-page.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    await page.setViewportSize({ width: 375, height: 800 });
    result.screenshotNarrow = join(outDir, "upload-page-375.png");
    await page.screenshot({ path: result.screenshotNarrow, fullPage: true });
    result.scrollWidth375 = await page.evaluate(() => document.documentElement.scrollWidth);
    result.accessibilityNarrow = await audit(page);
    await page.setViewportSize({ width: 1100, height: 900 });

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
    await choose(page, files[0]);
    await waitForPercent(page, 20);
    await item(page, name).getByRole("button", { name: "Pause upload" }).click();
    await item(page, name).getByRole("button", { name: "Resume upload" }).waitFor();
    await page.waitForTimeout(500); // progress events already queued when the request was aborted
    result.pausedPercent = await percent(page);
    result.screenshot = join(outDir, "upload-page-paused.png");
    await page.screenshot({ path: result.screenshot, fullPage: true });
    const pausedAt = tusRequests.length;
    await page.waitForTimeout(1500); // paused: no request may go out meanwhile
    result.requestsWhilePaused = tusRequests.length - pausedAt;
    result.percentAfterWaiting = await percent(page);
    await item(page, name).getByRole("button", { name: "Resume upload" }).click();
    await waitForDone(page, name);
    result.tusRequests = tusRequests;
  } else if (scenario === "reload") {
    const name = basename(files[0]);
    await throttle(page, THROTTLE);
    await choose(page, files[0]);
    await waitForPercent(page, Number(process.env.RELOAD_AT_PERCENT ?? 50));
    result.beforeReload = tusRequests.splice(0);
    await page.reload();
    await throttle(page, THROTTLE);
    // Golden Retriever has put the file back: by itself, or as a "ghost" the Dashboard asks for again.
    await item(page, name).waitFor();
    result.askedForTheFile = await item(page, name).evaluate((element) => element.classList.contains("is-ghost"));
    result.screenshot = join(outDir, `upload-page-reloaded-${result.askedForTheFile ? "asks" : "goes-on"}.png`);
    await page.screenshot({ path: result.screenshot, fullPage: true });
    if (result.askedForTheFile) {
      result.statusAfterReload = await page.locator(".uppy-Dashboard-serviceMsg").innerText();
      await item(page, name).getByRole("button", { name: "Re-select" }).click();
      await choose(page, files[0]);
    }
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

/** The Dashboard's entry for a file. */
function item(page, name) {
  return page.locator(".uppy-Dashboard-Item").filter({ has: page.locator(`.uppy-Dashboard-Item-name[title="${name}"]`) });
}

async function waitForDone(page, name) {
  await item(page, name).and(page.locator(".is-complete")).waitFor();
}

/** The Dashboard's total progress (its status bar), in percent. */
async function percent(page) {
  return Number(await page.locator(".uppy-StatusBar-progress").getAttribute("aria-valuenow"));
}

async function waitForPercent(page, at) {
  await page.waitForFunction((least) => Number(document.querySelector(".uppy-StatusBar-progress")?.getAttribute("aria-valuenow")) >= least,
    at, { polling: 50 });
}

async function signIn(page, jwt) {
  await page.locator("#token").fill(jwt);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#app").waitFor();
}

/** Chooses files with the Dashboard's file input ("browse files"), behind "Add more" once the Dashboard lists files. */
async function choose(page, paths) {
  const input = page.locator("input.uppy-Dashboard-input").first();
  if ((await input.count()) === 0) await page.locator(".uppy-DashboardContent-addMore").click();
  await input.setInputFiles(paths);
}

/** Drops the files on the Dashboard at once, as a drag from the desktop does (one DataTransfer, one drop event). */
async function drop(page, paths) {
  const contents = await Promise.all(paths.map(async (path) => ({ name: basename(path), base64: (await readFile(path)).toString("base64") })));
  const dataTransfer = await page.evaluateHandle((entries) => {
    const transfer = new DataTransfer();
    for (const { name, base64 } of entries) {
      const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
      // The type a desktop drag gives (by extension), so that an image gets its thumbnail.
      const type = { png: "image/png", txt: "text/plain" }[name.split(".").pop()] ?? "application/octet-stream";
      transfer.items.add(new File([bytes], name, { type, lastModified: 0 }));
    }
    return transfer;
  }, contents);
  const target = page.locator(".uppy-Dashboard-inner");
  for (const type of ["dragenter", "dragover", "drop"]) await target.dispatchEvent(type, { dataTransfer });
}

/** axe-core in the page (evaluated through the DevTools protocol, so the page's CSP stays as it is). */
async function audit(page) {
  await page.evaluate(axeSource);
  const { violations } = await page.evaluate(() => globalThis.axe.run(document, { resultTypes: ["violations"] }));
  return violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
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
