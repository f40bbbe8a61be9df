/**
 * CORS for browser clients (tus-js-client, Uppy). Preflights are answered here, before authentication
 * (a browser sends no Authorization on a preflight); real responses get the allow/expose headers so that
 * scripts can read Location, Upload-Offset and the other tus headers.
 *
 * CORS_ALLOWED_ORIGINS: comma-separated origins (`https://app.example.com`) or `*`. Unset: only
 * loopback origins (http://localhost:*, http://127.0.0.1:*), for local development.
 */

const ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

const ALLOWED_HEADERS = [
  "Authorization",
  "Content-Type",
  "Range",
  "traceparent",
  "tracestate",
  "Tus-Resumable",
  "Upload-Checksum",
  "Upload-Concat",
  "Upload-Defer-Length",
  "Upload-Length",
  "Upload-Metadata",
  "Upload-Offset",
  "X-HTTP-Method-Override",
  "X-Requested-With",
].join(", ");

const EXPOSED_HEADERS = [
  "Location",
  "Upload-Offset",
  "Upload-Length",
  "Upload-Defer-Length",
  "Upload-Metadata",
  "Upload-Expires",
  "Upload-Concat",
  "Upload-File",
  "Tus-Resumable",
  "Tus-Version",
  "Tus-Extension",
  "Tus-Max-Size",
  "Tus-Checksum-Algorithm",
  "Content-Range",
  "Content-Length",
  "ETag",
].join(", ");

/** Preflights are cached by the browser for this long (seconds). */
const MAX_AGE = "86400";

export function isAllowedOrigin(origin: string, configured: string | undefined): boolean {
  const allowed = (configured ?? "").split(",").map((entry) => entry.trim()).filter(Boolean);
  if (allowed.length === 0) {
    try {
      const url = new URL(origin);
      return url.protocol === "http:" && (url.hostname === "localhost" || url.hostname === "127.0.0.1" || url.hostname === "[::1]");
    } catch {
      return false;
    }
  }
  return allowed.includes("*") || allowed.includes(origin);
}

/** A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method), else null. */
export function preflight(request: Request, configured: string | undefined): Response | null {
  const origin = request.headers.get("Origin");
  if (request.method !== "OPTIONS" || !origin || !request.headers.get("Access-Control-Request-Method")) return null;
  if (!isAllowedOrigin(origin, configured)) return new Response(null, { status: 403, headers: { Vary: "Origin" } });
  return new Response(null, {
    status: 204,
    headers: {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": ALLOWED_METHODS,
      "Access-Control-Allow-Headers": ALLOWED_HEADERS,
      "Access-Control-Max-Age": MAX_AGE,
      Vary: "Origin",
    },
  });
}

/** The response with CORS headers when the request came from an allowed origin; otherwise unchanged. */
export function withCors(request: Request, response: Response, configured: string | undefined): Response {
  const origin = request.headers.get("Origin");
  if (!origin || !isAllowedOrigin(origin, configured)) return response;
  const headers = new Headers(response.headers);
  headers.set("Access-Control-Allow-Origin", origin);
  headers.set("Access-Control-Expose-Headers", EXPOSED_HEADERS);
  headers.append("Vary", "Origin");
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
}
