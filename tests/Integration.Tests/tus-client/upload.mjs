// Drives the official tus-js-client (Node build) against the Worker for TusClientTests.
// Usage: node upload.mjs <mode> <endpoint> <file> <name> <chunkSize> [urlStorageFile]
//   mode: "chunks"       one client, the whole file in chunkSize PATCHes
//         "resume"       a client aborts after its first chunk; a new client instance finds the stored
//                        URL (FileUrlStorage + fingerprint) and finishes the upload from the server's offset
//         "parallel"     parallelUploads: 3 (partial uploads + a final concatenation)
// The token comes from TUS_TOKEN. Prints one JSON line: { uploadUrl, resumedFrom?, patches, creations }, where
// creations lists each POST's Upload-Concat header ("" for a plain creation) and its status.
import { readFile } from "node:fs/promises";
import { FileUrlStorage, Upload } from "tus-js-client";

const [mode, endpoint, path, name, chunkSizeText, storagePath] = process.argv.slice(2);
const file = await readFile(path);
const chunkSize = Number(chunkSizeText);
let patches = 0;
const creations = [];

function options(extra) {
  return {
    endpoint,
    chunkSize,
    retryDelays: [0, 500, 1000],
    headers: { Authorization: `Bearer ${process.env.TUS_TOKEN}` },
    metadata: { filename: name, filetype: "application/octet-stream" },
    onAfterResponse(request, response) {
      if (request.getMethod() === "PATCH" && response.getStatus() === 204) patches++;
      if (request.getMethod() === "POST") creations.push({ concat: request.getHeader("Upload-Concat") ?? "", status: response.getStatus() });
    },
    ...extra,
  };
}

function run(upload) {
  return new Promise((resolve, reject) => {
    upload.options.onSuccess = () => resolve(upload.url);
    upload.options.onError = reject;
    upload.start();
  });
}

if (mode === "chunks") {
  const url = await run(new Upload(file, options({})));
  console.log(JSON.stringify({ uploadUrl: url, patches }));
} else if (mode === "parallel") {
  const url = await run(new Upload(file, options({ parallelUploads: 3 })));
  console.log(JSON.stringify({ uploadUrl: url, patches, creations }));
} else if (mode === "resume") {
  const storage = new FileUrlStorage(storagePath);
  const resumable = { urlStorage: storage, fingerprint: async () => `tus-it:${name}`, storeFingerprintForResuming: true, removeFingerprintOnSuccess: true };

  // First client: stop (abort, as a closed tab would) once the first chunk is acknowledged.
  const first = new Upload(file, options(resumable));
  const firstUrl = await new Promise((resolve, reject) => {
    first.options.onChunkComplete = () => {
      first.abort().then(() => resolve(first.url), reject);
    };
    first.options.onError = reject;
    first.start();
  });

  // Second client: a new instance that knows only what the URL storage kept.
  const second = new Upload(file, options(resumable));
  const previous = await second.findPreviousUploads();
  if (previous.length !== 1 || previous[0].uploadUrl !== firstUrl) throw new Error(`stored URL not found: ${JSON.stringify(previous)}`);
  second.resumeFromPreviousUpload(previous[0]);
  let resumedFrom;
  second.options.onAfterResponse = (request, response) => {
    if (request.getMethod() === "HEAD") resumedFrom ??= Number(response.getHeader("Upload-Offset"));
    if (request.getMethod() === "PATCH" && response.getStatus() === 204) patches++;
  };
  const url = await run(second);
  console.log(JSON.stringify({ uploadUrl: url, firstUrl, resumedFrom, patches }));
} else {
  throw new Error(`unknown mode ${mode}`);
}
