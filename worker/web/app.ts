// The upload page: Uppy's Dashboard with tus uploads (resumable, 50 MiB chunks) and Golden Retriever
// (the selection survives a reload), and the user's file list, against the Worker's own /uploads and
// /files. The token stays in this tab (sessionStorage) and travels only in the Authorization header; a
// `#token=` fragment is read once and removed from the address bar.
import { prettierBytes } from "@transloadit/prettier-bytes";
import Uppy from "@uppy/core";
import Dashboard from "@uppy/dashboard";
import GoldenRetriever from "@uppy/golden-retriever";
import Tus from "@uppy/tus";
import type { TusDetailedError as DetailedError } from "@uppy/tus";

/**
 * Under Cloudflare's smallest request-body limit (100 MB); a dropped connection repeats at most one chunk. A multiple
 * of the s3 backend's part size (10 MiB), so a PATCH leaves no tail to store and read back (docs/storage.md).
 */
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
  const response = (error as Partial<DetailedError>).originalResponse;
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

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

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

let refreshes = 0;

/** Loads the whole list; when refreshes overlap (uploads finishing together), only the latest one is shown. */
async function refreshFiles(): Promise<void> {
  const refresh = ++refreshes;
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
  if (refresh !== refreshes) return; // a later refresh has started: its answer is the newer one

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
  size.textContent = prettierBytes(file.size); // as the Dashboard writes sizes
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

type FileMeta = { name: string; type?: string };

/**
 * A name as it can be shown safely: invisible format characters (Unicode Cf: bidi overrides such as U+202E, which
 * make `invoice‮fdp.exe` read as `invoiceexe.pdf`, zero-width characters, U+FEFF) written out as `<U+202E>`.
 */
function visible(name: string): string {
  return name.replace(/\p{Cf}/gu, (c) => `<U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}>`);
}

type Uploader = Uppy<FileMeta, Record<string, never>>;

/**
 * The Dashboard for the signed-in user. Its id names Golden Retriever's storage (localStorage, IndexedDB), so a
 * selection restored after a reload is only ever offered to the user who made it, never to the next one to sign
 * in on this browser.
 */
function createUploader(user: string): Uploader {
  const uppy: Uploader = new Uppy<FileMeta, Record<string, never>>({
    id: `upload-page:${user}`,
    autoProceed: true,
    // The service refuses such names (400); refusing them here keeps them from ever being shown disguised. A file
    // already in the list is not added twice (Uppy's own rule, which this option replaces).
    onBeforeFileAdded(file, files) {
      if (!/\p{Cf}/u.test(file.name ?? "")) return !Object.hasOwn(files, file.id);
      showError(`${visible(file.name ?? "")} was not added: its name contains an invisible formatting character, which could make it read as another name. Rename the file and add it again.`);
      return false;
    },
  });
  uppy
    .use(Dashboard, {
      inline: true,
      target: "#uploader",
      width: "100%",
      height: 380,
      theme: "auto",
      proudlyDisplayPoweredByUppy: false,
      note: "Uploads resume after a lost connection or a reload.",
      doneButtonHandler: () => {
        uppy.clear();
      },
    })
    .use(Tus, {
      endpoint: new URL("/uploads", location.origin).href,
      chunkSize: CHUNK_SIZE,
      retryDelays: [0, 1000, 3000, 5000],
      limit: 3,
      // The token is set on each request (the headers option is read once per upload).
      onBeforeRequest(request) {
        for (const [name, value] of Object.entries(authHeaders())) request.setHeader(name, value);
      },
      removeFingerprintOnSuccess: true,
    })
    // Keeps the selection across a reload: files up to its IndexedDB limit (10 MiB) come back by themselves,
    // larger ones are asked for again (the Dashboard shows them as missing) and continue from the server's offset.
    .use(GoldenRetriever);

  /** After a reload, go on with the restored uploads as soon as every file is back (none asked for again). */
  const continueRestored = (): void => {
    if (uppy.getState().recoveredState && !uppy.getFiles().some((file) => file.isGhost)) uppy.emit("restore-confirmed");
  };
  uppy.on("restored", continueRestored);
  uppy.on("file-added", continueRestored);
  uppy.on("upload-success", () => void refreshFiles());
  uppy.on("upload-error", (file, error) => {
    const problem = problemOfTus(error);
    showError(describe(problem, `Uploading ${visible(file?.name ?? "a file")}`));
    if (!file) return;
    // Refused for what it is (its name, its size, the quota): retrying cannot help, and Golden Retriever would
    // bring it back on every reload. It leaves the list; the message above says why.
    if (problem && problem.status >= 400 && problem.status < 500 && problem.status !== 408 && problem.status !== 429) {
      uppy.removeFile(file.id);
    } else {
      uppy.setFileState(file.id, { error: describe(problem, "The upload") });
    }
  });
  uppy.on("complete", (result) => {
    if ((result.failed?.length ?? 0) === 0 && (result.successful?.length ?? 0) > 0) showError(null);
  });
  void applyServiceLimits(uppy);
  return uppy;
}

/** The service's size limit (Tus-Max-Size) as the Dashboard's restriction: too large is refused before a byte is sent. */
async function applyServiceLimits(uppy: Uploader): Promise<void> {
  try {
    const response = await fetch("/uploads", { method: "OPTIONS", headers: authHeaders() });
    const maxSize = Number(response.headers.get("Tus-Max-Size"));
    if (response.ok && maxSize > 0) uppy.setOptions({ restrictions: { maxFileSize: maxSize } });
  } catch {
    // unreachable now: the service refuses too large an upload itself, with a problem the page shows
  }
}

let uploader: Uploader | null = null;

/** The signed-in user's Dashboard and file list, or none when signed out. */
function showUser(): void {
  showSignedIn();
  if (token === null) return;
  uploader ??= createUploader(tokenSubject(token) ?? "unknown");
  void refreshFiles();
}

/** Signing out cancels what is uploading (terminated on the server while the token is still there) and forgets the selection. */
function signOut(): void {
  uploader?.cancelAll();
  uploader?.destroy();
  uploader = null;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showError(null);
  showSignedIn();
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
  showUser();
});

ui.signOut.addEventListener("click", () => {
  signOut();
  ui.tokenInput.focus();
});

ui.refresh.addEventListener("click", () => {
  showError(null);
  void refreshFiles();
});

showUser();
