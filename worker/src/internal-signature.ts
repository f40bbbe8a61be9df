/**
 * The Durable Object's proof to the upload service that a request comes from it: an HMAC-SHA256, keyed by
 * INTERNAL_SECRET, over the timestamp, the method as sent (with any X-HTTP-Method-Override), the request
 * target (path and query as on the wire) and the user id. The service checks it in
 * UploadService/Security/InternalSignatureCheck.cs; both test suites pin the same vector.
 */
export const TIMESTAMP_HEADER = "X-Internal-Timestamp";
export const SIGNATURE_HEADER = "X-Internal-Signature";

const VERSION = "v1";
const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

export interface SignedFields {
  timestamp: number;
  method: string;
  methodOverride: string | null;
  /** Path and query exactly as the request line carries them, e.g. `/files/a%20b?x=1`. */
  target: string;
  userId: string;
}

export async function internalSignature(secret: string, fields: SignedFields): Promise<string> {
  const canonical = [VERSION, String(fields.timestamp), fields.method, fields.methodOverride ?? "", fields.target, fields.userId].join("\n");
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), encoder.encode(canonical));
  return `${VERSION}=${[...new Uint8Array(mac)].map((byte) => byte.toString(16).padStart(2, "0")).join("")}`;
}

/** Adds the timestamp and signature headers for a request with this method, URL and headers (replacing any). */
export async function signForUploadService(secret: string, method: string, url: string, headers: Headers): Promise<void> {
  const { pathname, search } = new URL(url);
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = await internalSignature(secret, {
    timestamp,
    method,
    methodOverride: headers.get("X-HTTP-Method-Override"),
    target: pathname + search,
    userId: headers.get("X-User-Id") ?? "",
  });
  headers.set(TIMESTAMP_HEADER, String(timestamp));
  headers.set(SIGNATURE_HEADER, signature);
}

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    keys.set(secret, key);
  }
  return key;
}
