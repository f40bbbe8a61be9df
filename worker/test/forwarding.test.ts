import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Echo } from "./echo-server";
import { BASE, bearer, expectProblem, tokenFor } from "./support";

let auth: HeadersInit;
beforeAll(async () => {
  auth = bearer(await tokenFor("forwarding-user"));
});

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

describe("Worker → Durable Object → container", () => {
  it.each(["GET", "PUT", "POST", "DELETE", "HEAD", "OPTIONS"])("keeps method %s, path and query", async (method) => {
    const path = "/files/dir/na%20me.txt?offset=5&x=%2F";
    const response = await SELF.fetch(`${BASE}${path}`, { method, headers: auth, body: ["GET", "HEAD"].includes(method) ? undefined : "abc" });
    expect(response.status).toBe(200);
    expect(response.headers.get("X-Echo")).toBe("1"); // the service's own response, passed through
    if (method === "HEAD") return;
    const echo = (await response.json()) as Echo;
    expect(echo.method).toBe(method);
    expect(echo.url).toBe(path);
    if (method !== "GET") expect(echo.bodyLength).toBe(3);
  });

  it("passes client headers, adds the forwarded origin and the Worker's trace context", async () => {
    const clientTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const response = await SELF.fetch("http://localhost:8787/files?x=1", {
      headers: { ...auth, "Content-Type": "text/plain", "Upload-Length": "42", traceparent: clientTrace, tracestate: "vendor=1" },
    });
    const echo = (await response.json()) as Echo;
    expect(echo.headers["content-type"]).toBe("text/plain");
    expect(echo.headers["upload-length"]).toBe("42");
    expect(echo.headers["x-forwarded-host"]).toBe("localhost:8787");
    expect(echo.headers["x-forwarded-proto"]).toBe("http");
    const traceparent = String(echo.headers.traceparent);
    expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    // Same trace as the client's, but a span of ours, not the client's.
    expect(traceparent.split("-")[1]).toBe("0af7651916cd43dd8448eb211c80319c");
    expect(traceparent.split("-")[2]).not.toBe("b7ad6b7169203331");
  });

  it("forwards https as X-Forwarded-Proto https", async () => {
    const echo = (await (await SELF.fetch(`${BASE}/files`, { headers: auth })).json()) as Echo;
    expect(echo.headers["x-forwarded-host"]).toBe("files.example.test");
    expect(echo.headers["x-forwarded-proto"]).toBe("https");
  });

  it("streams a large body intact", async () => {
    const size = 24 * 1024 * 1024 + 7;
    const chunk = new Uint8Array(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
    const whole = new Uint8Array(size);
    for (let offset = 0; offset < size; offset += chunk.length) whole.set(chunk.subarray(0, Math.min(chunk.length, size - offset)), offset);
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= size) return controller.close();
        const part = whole.subarray(sent, Math.min(size, sent + 256 * 1024));
        sent += part.length;
        controller.enqueue(part.slice());
      },
    });
    const response = await SELF.fetch(`${BASE}/files/big.bin`, { method: "PUT", headers: auth, body });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.bodyLength).toBe(size);
    expect(echo.bodySha256).toBe(await sha256Hex(whole));
  });

  it.each([400, 416, 431])("turns a bare %i from the container into problem details, keeping its headers", async (status) => {
    const response = await SELF.fetch(`${BASE}/files/x`, { headers: { ...auth, "X-Echo-Status": String(status) } });
    const problem = await expectProblem(response, status);
    expect(problem.title).not.toBe("Error");
    expect(response.headers.get("Content-Range")).toBe("bytes */10");
  });

  it("a bare error to a HEAD reaches the client with its status and no body", async () => {
    const response = await SELF.fetch(`${BASE}/files/x`, { method: "HEAD", headers: { ...auth, "X-Echo-Status": "404" } });
    expect(response.status).toBe(404);
    expect(await response.text()).toBe("");
  });
});
