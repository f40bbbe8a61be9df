// The upload page: tus uploads (resumable, 50 MiB chunks) and the user's file list, against the Worker's
// own /uploads and /files. The token stays in this tab (sessionStorage) and travels only in the
// Authorization header; a `#token=` fragment is read once and removed from the address bar.
import { Upload, type DetailedError, type PreviousUpload } from "tus-js-client";

/** Under Cloudflare's smallest request-body limit (100 MB); a dropped connection repeats at most one chunk. */
const CHUNK_SIZE = 50 * 1024 * 1024;
const TOKEN_KEY = "upload-page:token";

interface FileEntry {
  name: string;
  size: number;
  createdAt: string;
}

interface Problem {
  status: number;
  title?: string;
  detail?: string;
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const ui = {
  error: $<HTMLParagraphElement>("error"),
  signIn: $<HTMLElement>("sign-in"),
  signInForm: $<HTMLFormElement>("sign-in-form"),
  tokenInput: $<HTMLInputElement>("token"),
  signedInAs: $<HTMLParagraphElement>("signed-in-as"),
  user: $<HTMLSpanElement>("user"),
  app: $<HTMLDivElement>("app"),
  dropZone: $<HTMLDivElement>("drop-zone"),
  fileInput: $<HTMLInputElement>("file-input"),
  unfinished: $<HTMLParagraphElement>("unfinished"),
  uploads: $<HTMLUListElement>("uploads"),
  refresh: $<HTMLButtonElement>("refresh"),
  signOut: $<HTMLButtonElement>("sign-out"),
  filesStatus: $<HTMLParagraphElement>("files-status"),
  files: $<HTMLTableElement>("files"),
};

let token = takeTokenFromFragment() ?? sessionStorage.getItem(TOKEN_KEY);

// ---- auth ------------------------------------------------------------------------------------------

function takeTokenFromFragment(): string | null {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromFragment = params.get("token");
  if (!fromFragment) return null;
  history.replaceState(null, "", location.pathname + location.search);
  sessionStorage.setItem(TOKEN_KEY, fromFragment);
  return fromFragment;
}

function tokenSubject(jwt: string): string | null {
  try {
    const payload = jwt.split(".")[1] ?? "";
    const json = atob(payload.replace(/-/g, "+").replace(/_/g, "/"));
    const sub = (JSON.parse(json) as { sub?: unknown }).sub;
    return typeof sub === "string" ? sub : null;
  } catch {
    return null;
  }
}

function showSignedIn(): void {
  const signedIn = token !== null;
  ui.signIn.hidden = signedIn;
  ui.app.hidden = !signedIn;
  ui.signedInAs.hidden = !signedIn;
  if (!signedIn) return;
  const user = tokenSubject(token!);
  ui.user.textContent = user ? `Signed in as ${user}` : "Signed in";
}

function authHeaders(): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// ---- errors ----------------------------------------------------------------------------------------

function showError(message: string | null): void {
  ui.error.textContent = message ?? "";
  ui.error.hidden = message === null;
}

/** Words for a failed request: what happened and what the user can do about it. */
function describe(problem: Problem | null, action: string): string {
  if (problem === null) return `${action} failed: the server could not be reached. Check your connection and try again.`;
  switch (problem.status) {
    case 401:
      return `${action} failed: your access token is invalid or has expired. Sign out and sign in with a new token.`;
    case 413:
    case 507:
      return `${action} failed: ${problem.detail ?? "the file is larger than the space you have left."}`;
    case 404:
      return `${action} failed: the file no longer exists.`;
    case 502:
    case 503:
      return `${action} failed: the upload service is not available right now. Try again in a moment.`;
    default:
      return `${action} failed (${problem.status}${problem.title ? ` ${problem.title}` : ""})${problem.detail ? `: ${problem.detail}` : "."}`;
  }
}

async function problemOf(response: Response): Promise<Problem> {
  try {
    const body = (await response.json()) as Partial<Problem>;
    return { status: response.status, title: body.title, detail: body.detail };
  } catch {
    return { status: response.status, title: response.statusText };
  }
}

function problemOfTus(error: Error): Problem | null {
  const response = (error as DetailedError).originalResponse;
  if (!response) return null;
  let body: Partial<Problem> = {};
  try {
    body = JSON.parse(response.getBody()) as Partial<Problem>;
  } catch {
    // not problem+json
  }
  return { status: response.getStatus(), title: body.title, detail: body.detail };
}

// ---- the file list ---------------------------------------------------------------------------------

const sizeFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${sizeFormat.format(value)} ${units[unit]}`;
}

/** Names may contain "/" (folders): each segment is encoded, the slashes stay. */
function fileUrl(name: string): string {
  return `/files/${name.split("/").map(encodeURIComponent).join("/")}`;
}

async function request(url: string, init: RequestInit, action: string): Promise<Response | null> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, headers: { ...authHeaders(), ...init.headers } });
  } catch {
    showError(describe(null, action));
    return null;
  }
  if (!response.ok) {
    showError(describe(await problemOf(response), action));
    return null;
  }
  return response;
}

async function refreshFiles(): Promise<void> {
  ui.filesStatus.textContent = "Loading…";
  const files: FileEntry[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor ? `?limit=1000&cursor=${encodeURIComponent(cursor)}` : "?limit=1000";
    const response = await request(`/files${query}`, {}, "Loading your files");
    if (!response) {
      ui.filesStatus.textContent = "";
      return;
    }
    const page = (await response.json()) as { files: FileEntry[]; nextCursor: string | null };
    files.push(...page.files);
    cursor = page.nextCursor;
  } while (cursor);

  const body = ui.files.tBodies[0]!;
  body.replaceChildren(...files.map(fileRow));
  ui.files.hidden = files.length === 0;
  ui.filesStatus.textContent = files.length === 0 ? "No files yet." : `${files.length} file${files.length === 1 ? "" : "s"}.`;
}

function fileRow(file: FileEntry): HTMLTableRowElement {
  const row = document.createElement("tr");
  row.dataset.name = file.name;
  const name = document.createElement("th");
  name.scope = "row";
  name.textContent = file.name;
  const size = document.createElement("td");
  size.textContent = formatBytes(file.size);
  const date = document.createElement("td");
  const time = document.createElement("time");
  time.dateTime = file.createdAt;
  time.textContent = dateFormat.format(new Date(file.createdAt));
  date.append(time);
  // The buttons' flex container sits inside the cell: a flex <td> would leave the table's layout.
  const actions = document.createElement("div");
  actions.className = "actions";
  actions.append(
    button("Download", `Download ${file.name}`, () => download(file.name)),
    button("Delete", `Delete ${file.name}`, () => remove(file.name)),
  );
  const actionsCell = document.createElement("td");
  actionsCell.append(actions);
  row.append(name, size, date, actionsCell);
  return row;
}

function button(text: string, label: string, onClick: () => void): HTMLButtonElement {
  const element = document.createElement("button");
  element.type = "button";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

/** The token goes in a header, never in a URL: fetch the bytes, then save them from a blob URL. */
async function download(name: string): Promise<void> {
  showError(null);
  ui.filesStatus.textContent = `Downloading ${name}…`;
  const response = await request(fileUrl(name), {}, `Downloading ${name}`);
  if (!response) return;
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  ui.filesStatus.textContent = `Downloaded ${name}.`;
}

async function remove(name: string): Promise<void> {
  if (!confirm(`Delete ${name}?`)) return;
  showError(null);
  const response = await request(fileUrl(name), { method: "DELETE" }, `Deleting ${name}`);
  if (response) await refreshFiles();
}

// ---- uploads ---------------------------------------------------------------------------------------

function startUploads(files: Iterable<File>): void {
  showError(null);
  for (const file of files) void startUpload(file);
}

async function startUpload(file: File): Promise<void> {
  const item = document.createElement("li");
  item.className = "upload";
  const name = document.createElement("span");
  name.className = "upload-name";
  name.textContent = file.name;
  const progress = document.createElement("progress");
  progress.max = 100;
  progress.value = 0;
  progress.setAttribute("aria-label", `Upload progress of ${file.name}`);
  const status = document.createElement("span");
  status.className = "upload-status";
  status.setAttribute("aria-live", "polite");
  status.textContent = "Starting…";
  const pause = button("Pause", `Pause ${file.name}`, () => togglePause());
  const cancel = button("Cancel", `Cancel ${file.name}`, () => void cancelUpload());
  const controls = document.createElement("span");
  controls.className = "actions";
  controls.append(pause, cancel);
  item.append(name, progress, status, controls);
  ui.uploads.append(item);

  let paused = false;
  let lastSample = { time: performance.now(), bytes: 0 };
  let speed = 0;

  const upload = new Upload(file, {
    endpoint: new URL("/uploads", location.origin).href,
    chunkSize: CHUNK_SIZE,
    retryDelays: [0, 1000, 3000, 5000],
    headers: authHeaders(),
    metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: true,
    onProgress(sent, total) {
      const now = performance.now();
      const elapsed = (now - lastSample.time) / 1000;
      if (elapsed >= 0.25) {
        const current = (sent - lastSample.bytes) / elapsed;
        speed = speed === 0 ? current : 0.7 * speed + 0.3 * current;
        lastSample = { time: now, bytes: sent };
      }
      const percent = total > 0 ? Math.floor((sent / total) * 100) : 100;
      progress.value = percent;
      status.textContent = `${percent}% · ${formatBytes(sent)} of ${formatBytes(total)}${speed > 0 ? ` · ${formatBytes(speed)}/s` : ""}`;
    },
    onSuccess() {
      progress.value = 100;
      status.textContent = `Done · ${formatBytes(file.size)}`;
      item.classList.add("done");
      pause.remove();
      cancel.textContent = "Dismiss";
      cancel.setAttribute("aria-label", `Dismiss ${file.name}`);
      void refreshFiles();
      void showUnfinished();
    },
    onError(error) {
      status.textContent = "Failed";
      item.classList.add("failed");
      pause.textContent = "Retry";
      pause.setAttribute("aria-label", `Retry ${file.name}`);
      paused = true;
      showError(describe(problemOfTus(error), `Uploading ${file.name}`));
    },
  });

  function togglePause(): void {
    if (paused) {
      paused = false;
      pause.textContent = "Pause";
      pause.setAttribute("aria-label", `Pause ${file.name}`);
      item.classList.remove("failed", "paused");
      showError(null);
      lastSample = { time: performance.now(), bytes: lastSample.bytes };
      speed = 0;
      status.textContent = "Resuming…";
      upload.start();
    } else {
      paused = true;
      void upload.abort();
      pause.textContent = "Resume";
      pause.setAttribute("aria-label", `Resume ${file.name}`);
      item.classList.add("paused");
      status.textContent = `Paused at ${progress.value}%`;
    }
  }

  async function cancelUpload(): Promise<void> {
    if (!item.classList.contains("done")) {
      try {
        await upload.abort(true); // tus termination: the server forgets the partial upload
      } catch {
        // already gone or unreachable: nothing left to undo here
      }
      void showUnfinished();
    }
    item.remove();
  }

  // Same file as an unfinished upload (from before a reload or a dropped connection): continue it.
  const previous = await upload.findPreviousUploads();
  const latest = previous.sort((a, b) => b.creationTime.localeCompare(a.creationTime))[0];
  if (latest) {
    upload.resumeFromPreviousUpload(latest);
    status.textContent = "Resuming…";
  }
  upload.start();
}

/** Uploads left unfinished in this browser (tus fingerprints in localStorage): offer to continue them. */
async function showUnfinished(): Promise<void> {
  const probe = new Upload(new Blob([]), { endpoint: "/uploads" });
  let stored: PreviousUpload[] = [];
  try {
    stored = (await probe.options.urlStorage?.findAllUploads()) ?? [];
  } catch {
    // storage unavailable (private mode): nothing to offer
  }
  const names = [...new Set(stored.map((entry) => entry.metadata.filename).filter(Boolean))];
  ui.unfinished.hidden = names.length === 0;
  ui.unfinished.textContent =
    names.length === 0 ? "" : `Unfinished: ${names.join(", ")}. Choose the same file again to continue where it stopped.`;
}

// ---- wiring ----------------------------------------------------------------------------------------

ui.signInForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const value = ui.tokenInput.value.trim();
  if (!value) return;
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
  ui.tokenInput.value = "";
  showError(null);
  showSignedIn();
  void refreshFiles();
});

ui.signOut.addEventListener("click", () => {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showError(null);
  showSignedIn();
  ui.tokenInput.focus();
});

ui.refresh.addEventListener("click", () => {
  showError(null);
  void refreshFiles();
});

ui.fileInput.addEventListener("change", () => {
  if (ui.fileInput.files) startUploads(ui.fileInput.files);
  ui.fileInput.value = "";
});

for (const type of ["dragenter", "dragover"]) {
  ui.dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    ui.dropZone.classList.add("dragging");
  });
}
ui.dropZone.addEventListener("dragleave", () => ui.dropZone.classList.remove("dragging"));
ui.dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  ui.dropZone.classList.remove("dragging");
  if (event.dataTransfer?.files.length) startUploads(event.dataTransfer.files);
});

showSignedIn();
if (token) {
  void refreshFiles();
  void showUnfinished();
}
