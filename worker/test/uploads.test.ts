import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { isAllowedOrigin } from "../src/cors";
import type { Echo } from "./echo-server";
import { BASE, bearer, expectProblem, tokenFor } from "./support";

let auth: HeadersInit;
beforeAll(async () => {
  auth = bearer(await tokenFor("tus-user"));
});

describe("/uploads (tus) through the Worker", () => {
  it.each(["/uploads", "/uploads/0123456789abcdef0123456789abcdef"])("routes %s to the user's container", async (path) => {
    const response = await SELF.fetch(`${BASE}${path}`, { method: "POST", headers: { ...auth, "Tus-Resumable": "1.0.0", "Upload-Length": "5" } });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.url).toBe(path);
    expect(echo.headers["x-user-id"]).toBe("tus-user");
    expect(echo.headers["tus-resumable"]).toBe("1.0.0");
    expect(echo.headers["upload-length"]).toBe("5");
  });

  it("asks for a token on /uploads", async () => {
    await expectProblem(await SELF.fetch(`${BASE}/uploads`, { method: "POST" }), 401);
  });

  it("forwards PATCH to the container as POST with X-HTTP-Method-Override (containers#116), body intact", async () => {
    const body = new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => (i * 7) & 0xff);
    const response = await SELF.fetch(`${BASE}/uploads/0123456789abcdef0123456789abcdef?q=1`, {
      method: "PATCH",
      headers: { ...auth, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0", "Tus-Resumable": "1.0.0" },
      body,
    });
    const echo = (await response.json()) as Echo;
    expect(echo.method).toBe("POST");
    expect(echo.headers["x-http-method-override"]).toBe("PATCH");
    expect(echo.url).toBe("/uploads/0123456789abcdef0123456789abcdef?q=1");
    expect(echo.headers["content-type"]).toBe("application/offset+octet-stream");
    expect(echo.headers["upload-offset"]).toBe("0");
    expect(echo.bodyLength).toBe(body.length);
  });

  it("keeps a client's own POST with X-HTTP-Method-Override as it is", async () => {
    const response = await SELF.fetch(`${BASE}/uploads/0123456789abcdef0123456789abcdef`, {
      method: "POST",
      headers: { ...auth, "X-HTTP-Method-Override": "DELETE" },
    });
    const echo = (await response.json()) as Echo;
    expect(echo.method).toBe("POST");
    expect(echo.headers["x-http-method-override"]).toBe("DELETE");
  });
});

describe("CORS", () => {
  const origin = "http://localhost:5173";

  it("answers a preflight from an allowed origin without a token", async () => {
    const response = await SELF.fetch(`${BASE}/uploads`, {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset" },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    expect(response.headers.get("Access-Control-Allow-Methods")).toContain("PATCH");
    const allowed = response.headers.get("Access-Control-Allow-Headers")!.toLowerCase();
    for (const header of ["authorization", "tus-resumable", "upload-offset", "upload-length", "upload-metadata", "upload-checksum", "upload-concat", "x-http-method-override"]) {
      expect(allowed).toContain(header);
    }
    expect(response.headers.get("X-Echo")).toBeNull(); // the container never saw it
  });

  it("refuses a preflight from another origin", async () => {
    const response = await SELF.fetch(`${BASE}/uploads`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "PATCH" },
    });
    expect(response.status).toBe(403);
    expect(response.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });

  it("passes a plain OPTIONS (tus discovery) to the container, with auth", async () => {
    const response = await SELF.fetch(`${BASE}/uploads`, { method: "OPTIONS", headers: auth });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echo).method).toBe("OPTIONS");
  });

  it("exposes the tus headers on real responses, also on errors", async () => {
    const ok = await SELF.fetch(`${BASE}/uploads`, { method: "POST", headers: { ...auth, Origin: origin } });
    expect(ok.headers.get("Access-Control-Allow-Origin")).toBe(origin);
    const exposed = ok.headers.get("Access-Control-Expose-Headers")!.split(",").map((h) => h.trim());
    for (const header of ["Location", "Upload-Offset", "Upload-Length", "Upload-Expires", "Upload-Metadata", "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size"]) {
      expect(exposed).toContain(header);
    }
    await ok.text();

    const unauthorized = await SELF.fetch(`${BASE}/uploads`, { method: "POST", headers: { Origin: origin } });
    await expectProblem(unauthorized, 401);
    expect(unauthorized.headers.get("Access-Control-Allow-Origin")).toBe(origin);

    const foreign = await SELF.fetch(`${BASE}/uploads`, { method: "POST", headers: { ...auth, Origin: "https://evil.example" } });
    expect(foreign.headers.get("Access-Control-Allow-Origin")).toBeNull();
    await foreign.text();
  });

  it.each([
    ["http://localhost:3000", undefined, true],
    ["http://127.0.0.1:8080", undefined, true],
    ["https://localhost:3000", undefined, false],
    ["https://app.example.com", undefined, false],
    ["https://app.example.com", "https://app.example.com, https://admin.example.com", true],
    ["https://admin.example.com", "https://app.example.com,https://admin.example.com", true],
    ["http://localhost:3000", "https://app.example.com", false],
    ["https://anything.example", "*", true],
    ["not a url", undefined, false],
  ])("origin %s with CORS_ALLOWED_ORIGINS=%s → %s", (origin, configured, expected) => {
    expect(isAllowedOrigin(origin, configured)).toBe(expected);
  });
});
