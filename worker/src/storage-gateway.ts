/**
 * The storage a user's container reaches, and the only thing it reaches: the part of the S3 API that the
 * upload service's s3 backend calls (UploadService/Storage/S3/), served by the Durable Object's outbound
 * handler for STORAGE_HOST (user-app-container.ts) on top of the R2 binding FILES. No storage key is ever in a
 * container: the container signs with placeholder keys, which nobody checks; what it may touch is decided here,
 * from the user its Durable Object bound to the handler (`params.userKey`), never from the request.
 *
 * A user's keys are those under `users/{userKey}/` and `uploads/{userKey}/`, where userKey is the hex SHA-256 of
 * the user id, as the service lays out the bucket. Anything else (another user's prefix, a key outside both, a
 * listing of the whole bucket, a key with `..` or escapes in it) is refused with 403, S3's AccessDenied.
 *
 * Served, path-style (`http://storage.internal/{STORAGE_BUCKET}/{key}`): PutObject, GetObject (with Range),
 * HeadObject, DeleteObject, ListObjectsV2 (prefix, max-keys, continuation-token, start-after), and multipart:
 * CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload. Anything else gets 501.
 */
export const STORAGE_HOST = "storage.internal";

/** The bucket name the container addresses; the handler serves the one bucket bound to it under this name. */
export const STORAGE_BUCKET = "files";

/** What the Durable Object binds its outbound handler to (ctx.params). */
export interface StorageParams {
  /** Hex SHA-256 of the user id: the user part of every key the user may touch. */
  userKey: string;
}

const encoder = new TextEncoder();

/** The user part of the user's keys, as the upload service computes it (FileStore.UserKey). */
export async function userStorageKey(userId: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(userId));
  return [...new Uint8Array(digest)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** The outbound handler's entry: `params` come from the Durable Object (setOutboundByHost), never from the container. */
export function storageOutbound(request: Request, env: Env, ctx: { params?: unknown }): Promise<Response> {
  const params = ctx.params as Partial<StorageParams> | undefined;
  if (typeof params?.userKey !== "string" || !USER_KEY.test(params.userKey)) {
    return Promise.resolve(s3Error(403, "AccessDenied", "No user is bound to this container's storage."));
  }
  return serveStorage(request, env.FILES, params.userKey);
}

const USER_KEY = /^[0-9a-f]{64}$/;
/** Segments of the keys the service writes: hex names, ids, `state`, `tail.{id}`; no empty, `.` or `..` segment. */
const KEY = /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)*[A-Za-z0-9_-][A-Za-z0-9._-]*$/;
const PREFIX = /^(?:[A-Za-z0-9_-][A-Za-z0-9._-]*\/)*(?:[A-Za-z0-9_-][A-Za-z0-9._-]*)?$/;
const MAX_KEY_BYTES = 1024;
const MAX_LIST_KEYS = 1000;

/** Serves one S3 request for the user whose keys start with `users/{userKey}/` or `uploads/{userKey}/`. */
export async function serveStorage(request: Request, bucket: R2Bucket, userKey: string): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname.slice(1);
  const slash = path.indexOf("/");
  const bucketName = slash < 0 ? path : path.slice(0, slash);
  if (bucketName !== STORAGE_BUCKET) return s3Error(404, "NoSuchBucket", `There is no bucket ${bucketName || "(none)"} here.`);

  let key: string;
  try {
    key = decodeURIComponent(slash < 0 ? "" : path.slice(slash + 1));
  } catch {
    return s3Error(400, "InvalidURI", "The key is not valid percent-encoding.");
  }
  const allowed = [`users/${userKey}/`, `uploads/${userKey}/`];
  const mine = (name: string) => allowed.some((prefix) => name.startsWith(prefix));
  const query = url.searchParams;

  try {
    if (key === "") {
      if (request.method !== "GET" || query.get("list-type") !== "2") return notImplemented(request);
      const prefix = query.get("prefix") ?? "";
      const startAfter = query.get("start-after") ?? undefined;
      if (!PREFIX.test(prefix) || !mine(prefix) || (startAfter !== undefined && !mine(startAfter))) {
        return s3Error(403, "AccessDenied", "Only this user's prefixes can be listed.");
      }
      return await list(bucket, query, prefix, startAfter);
    }

    if (!KEY.test(key) || encoder.encode(key).length > MAX_KEY_BYTES || !mine(key)) {
      return s3Error(403, "AccessDenied", "This container may not touch that key.", key);
    }
    const uploadId = query.get("uploadId");
    switch (request.method) {
      case "GET":
        return await getObject(bucket, key, request.headers);
      case "HEAD":
        return await headObject(bucket, key);
      case "PUT":
        if (request.headers.has("x-amz-copy-source")) return notImplemented(request);
        if (uploadId !== null) return await uploadPart(bucket, key, uploadId, query.get("partNumber"), request);
        return await putObject(bucket, key, request);
      case "POST":
        if (query.has("uploads")) return await createMultipartUpload(bucket, key, request.headers);
        if (uploadId !== null) return await completeMultipartUpload(bucket, key, uploadId, await request.text());
        return notImplemented(request);
      case "DELETE":
        if (uploadId !== null) await bucket.resumeMultipartUpload(key, uploadId).abort();
        else await bucket.delete(key);
        return new Response(null, { status: 204 });
      default:
        return notImplemented(request);
    }
  } catch (error) {
    return fromR2Error(error, key);
  }
}

async function list(bucket: R2Bucket, query: URLSearchParams, prefix: string, startAfter: string | undefined): Promise<Response> {
  const asked = Number.parseInt(query.get("max-keys") ?? "", 10);
  const maxKeys = Number.isNaN(asked) ? MAX_LIST_KEYS : Math.min(MAX_LIST_KEYS, Math.max(0, asked));
  const token = query.get("continuation-token") ?? undefined;
  const listed: R2Objects =
    maxKeys === 0
      ? { objects: [], truncated: false, delimitedPrefixes: [] }
      : await bucket.list({ prefix, limit: maxKeys, cursor: token, startAfter: token === undefined ? startAfter : undefined });
  const urlEncoded = query.get("encoding-type") === "url";
  const name = (value: string) => xml(urlEncoded ? encodeURIComponent(value).replaceAll("%2F", "/") : value);
  const contents = listed.objects.map(
    (object) =>
      `<Contents><Key>${name(object.key)}</Key><LastModified>${object.uploaded.toISOString()}</LastModified>` +
      `<ETag>${xml(object.httpEtag)}</ETag><Size>${object.size}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
  );
  const next = listed.truncated ? `<NextContinuationToken>${xml(listed.cursor)}</NextContinuationToken>` : "";
  return xmlResponse(
    "ListBucketResult",
    `<Name>${STORAGE_BUCKET}</Name><Prefix>${name(prefix)}</Prefix><KeyCount>${listed.objects.length}</KeyCount>` +
      `<MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${listed.truncated}</IsTruncated>` +
      (token === undefined ? "" : `<ContinuationToken>${xml(token)}</ContinuationToken>`) +
      (startAfter === undefined ? "" : `<StartAfter>${name(startAfter)}</StartAfter>`) +
      (urlEncoded ? "<EncodingType>url</EncodingType>" : "") +
      next +
      contents.join(""),
  );
}

/** One byte range, as S3 takes it: `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is no range (the whole object). */
const RANGE = /^bytes=(?:(\d+)-(\d*)|-(\d+))$/;

async function getObject(bucket: R2Bucket, key: string, headers: Headers): Promise<Response> {
  const match = RANGE.exec(headers.get("Range")?.trim() ?? "");
  const [, first, last, suffix] = match ?? [];
  const asked: R2Range | undefined = !match
    ? undefined
    : suffix !== undefined
      ? { suffix: Number(suffix) }
      : { offset: Number(first), ...(last ? { length: Number(last) - Number(first) + 1 } : {}) };
  let object: R2ObjectBody | null;
  try {
    object = await bucket.get(key, asked ? { range: asked } : undefined);
  } catch (error) {
    if (asked) return s3Error(416, "InvalidRange", "The range is not satisfiable.", key);
    throw error;
  }
  if (object === null) return s3Error(404, "NoSuchKey", "The key does not exist.", key);
  if (!asked) return new Response(object.body, { headers: objectHeaders(object) });

  // The range as served: a suffix or an end beyond the object is cut to it; a start at or after its end is not satisfiable.
  const size = object.size;
  const start = "suffix" in asked ? Math.max(0, size - asked.suffix) : (asked.offset ?? 0);
  const end = "suffix" in asked || asked.length === undefined ? size - 1 : Math.min(size - 1, start + asked.length - 1);
  if (start >= size || end < start) {
    await object.body.cancel();
    return s3Error(416, "InvalidRange", `The range is outside the object's ${size} bytes.`, key);
  }
  const answer = objectHeaders(object);
  answer.set("Content-Range", `bytes ${start}-${end}/${size}`);
  answer.set("Content-Length", String(end - start + 1));
  return new Response(object.body, { status: 206, headers: answer });
}

async function headObject(bucket: R2Bucket, key: string): Promise<Response> {
  const object = await bucket.head(key);
  return object === null ? new Response(null, { status: 404 }) : new Response(null, { headers: objectHeaders(object) });
}

async function putObject(bucket: R2Bucket, key: string, request: Request): Promise<Response> {
  if (request.body !== null && !request.headers.has("Content-Length")) {
    return s3Error(411, "MissingContentLength", "A body needs a Content-Length.", key);
  }
  const contentType = request.headers.get("Content-Type") ?? undefined;
  const object = await bucket.put(key, request.body ?? new Uint8Array(), { httpMetadata: { contentType } });
  return new Response(null, { headers: { ETag: object.httpEtag } });
}

async function uploadPart(bucket: R2Bucket, key: string, uploadId: string, partNumber: string | null, request: Request): Promise<Response> {
  const number = Number(partNumber);
  if (!Number.isInteger(number) || number < 1 || number > 10_000) {
    return s3Error(400, "InvalidArgument", "partNumber must be an integer from 1 to 10000.", key);
  }
  if (request.body === null || !request.headers.has("Content-Length")) {
    return s3Error(411, "MissingContentLength", "A part needs a body with a Content-Length.", key);
  }
  const part = await bucket.resumeMultipartUpload(key, uploadId).uploadPart(number, request.body);
  return new Response(null, { headers: { ETag: `"${part.etag}"` } });
}

async function createMultipartUpload(bucket: R2Bucket, key: string, headers: Headers): Promise<Response> {
  const upload = await bucket.createMultipartUpload(key, { httpMetadata: { contentType: headers.get("Content-Type") ?? undefined } });
  return xmlResponse(
    "InitiateMultipartUploadResult",
    `<Bucket>${STORAGE_BUCKET}</Bucket><Key>${xml(key)}</Key><UploadId>${xml(upload.uploadId)}</UploadId>`,
  );
}

async function completeMultipartUpload(bucket: R2Bucket, key: string, uploadId: string, body: string): Promise<Response> {
  const parts: R2UploadedPart[] = [];
  for (const [, part = ""] of body.matchAll(/<Part>([\s\S]*?)<\/Part>/g)) {
    const partNumber = Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(part)?.[1]);
    const etag = /<ETag>([\s\S]*?)<\/ETag>/.exec(part)?.[1];
    if (!Number.isInteger(partNumber) || etag === undefined) return s3Error(400, "MalformedXML", "Each Part needs a PartNumber and an ETag.", key);
    parts.push({ partNumber, etag: unxml(etag).trim().replace(/^"|"$/g, "") });
  }
  if (parts.length === 0) return s3Error(400, "MalformedXML", "CompleteMultipartUpload needs at least one Part.", key);
  const object = await bucket.resumeMultipartUpload(key, uploadId).complete(parts);
  return xmlResponse(
    "CompleteMultipartUploadResult",
    `<Location>http://${STORAGE_HOST}/${STORAGE_BUCKET}/${xml(key)}</Location><Bucket>${STORAGE_BUCKET}</Bucket>` +
      `<Key>${xml(key)}</Key><ETag>${xml(object.httpEtag)}</ETag>`,
  );
}

function objectHeaders(object: R2Object): Headers {
  const headers = new Headers();
  object.writeHttpMetadata(headers);
  headers.set("ETag", object.httpEtag);
  headers.set("Last-Modified", object.uploaded.toUTCString());
  headers.set("Content-Length", String(object.size));
  headers.set("Accept-Ranges", "bytes");
  return headers;
}

/** R2's errors as S3's: a missing upload or key, a bad part list, an unsatisfiable range; the rest is R2's failure. */
function fromR2Error(error: unknown, key: string): Response {
  const message = error instanceof Error ? error.message : String(error);
  if (/NoSuchUpload|upload does not exist|10024/i.test(message)) return s3Error(404, "NoSuchUpload", "The multipart upload does not exist.", key);
  if (/NoSuchKey|10007/i.test(message)) return s3Error(404, "NoSuchKey", "The key does not exist.", key);
  if (/InvalidPart|EntityTooSmall|10025|10011|10048/i.test(message)) return s3Error(400, "InvalidPart", message, key);
  console.error(`storage: R2 failed on ${key || "a listing"}`, error);
  return s3Error(500, "InternalError", "The bucket failed; try again.", key);
}

function notImplemented(request: Request): Response {
  return s3Error(501, "NotImplemented", `${request.method} ${new URL(request.url).search || "(no query)"} is not served by this storage.`);
}

function s3Error(status: number, code: string, message: string, key?: string): Response {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${xml(message)}</Message>${
    key ? `<Key>${xml(key)}</Key>` : ""
  }</Error>`;
  return new Response(body, { status, headers: { "Content-Type": "application/xml" } });
}

function xmlResponse(root: string, inner: string): Response {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${inner}</${root}>`;
  return new Response(body, { headers: { "Content-Type": "application/xml" } });
}

function xml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function unxml(value: string): string {
  return value
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, "&");
}
