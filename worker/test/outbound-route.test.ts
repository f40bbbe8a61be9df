import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { interceptedRequest, serveOutboundRoute, throughOutboundRoute } from "../src/dev/outbound-route";

// The local stand-in for outbound interception (src/dev/outbound-route.ts): what the instance is pointed at, and
// who may use it. The whole path (instance → route → Durable Object → handler → R2) runs in the integration tests.
const TOKEN = "runtime-token-for-vitest";
const OBJECT_ID = "a".repeat(64);
const OTHER_ID = "b".repeat(64);

async function routeOf(durableObjectId: string): Promise<string> {
  const rewritten = await throughOutboundRoute({ url: "http://storage.internal" }, () => true, "http://127.0.0.1:8787", TOKEN, durableObjectId);
  return rewritten.url ?? "";
}

describe("throughOutboundRoute", () => {
  it("points URLs to intercepted hosts at the route and keeps everything else", async () => {
    const env = {
      Storage__S3__ServiceUrl: "http://storage.internal",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otlp.internal/",
      WITH_PATH: "http://storage.internal/base?x=1",
      NOT_INTERCEPTED: "http://example.test",
      HTTPS: "https://storage.internal",
      WITH_PORT: "http://storage.internal:9000",
      PLAIN: "storage.internal",
      SECRET: "s3cr3t",
    };
    const intercepted = (host: string) => host === "storage.internal" || host === "otlp.internal";
    const result = await throughOutboundRoute(env, intercepted, "http://127.0.0.1:8787/", TOKEN, OBJECT_ID);
    const route = /^http:\/\/127\.0\.0\.1:8787\/__outbound\/a{64}\/[0-9a-f]{64}\//;
    expect(result.Storage__S3__ServiceUrl).toMatch(new RegExp(`${route.source}storage\\.internal$`));
    expect(result.OTEL_EXPORTER_OTLP_ENDPOINT).toMatch(new RegExp(`${route.source}otlp\\.internal$`));
    expect(result.WITH_PATH).toMatch(new RegExp(`${route.source}storage\\.internal/base\\?x=1$`));
    for (const name of ["NOT_INTERCEPTED", "HTTPS", "WITH_PORT", "PLAIN", "SECRET"] as const) expect(result[name]).toBe(env[name]);
  });

  it("gives each Durable Object a key of its own", async () => {
    const [one, other] = [await routeOf(OBJECT_ID), await routeOf(OTHER_ID)];
    expect(one.split("/")[5]).not.toBe(other.split("/")[5]);
    expect(await routeOf(OBJECT_ID)).toBe(one);
  });
});

describe("serveOutboundRoute", () => {
  const vars = { ...env, CONTAINER_RUNTIME_TOKEN: TOKEN };

  it("leaves every other path to the Worker", async () => {
    expect(await serveOutboundRoute(new Request("http://127.0.0.1:8787/files"), vars)).toBeUndefined();
  });

  it("refuses a key of another Durable Object, a made-up key and a missing one", async () => {
    const alicesKey = new URL(await routeOf(OBJECT_ID)).pathname.split("/")[3] ?? "";
    for (const path of [
      `/__outbound/${OTHER_ID}/${alicesKey}/storage.internal/files/x`,
      `/__outbound/${OBJECT_ID}/${"0".repeat(64)}/storage.internal/files/x`,
      `/__outbound/${OBJECT_ID}/${alicesKey.slice(1)}/storage.internal/files/x`,
    ]) {
      const response = await serveOutboundRoute(new Request(`http://127.0.0.1:8787${path}`), vars);
      expect(response?.status, path).toBe(403);
    }
    const malformed = await serveOutboundRoute(new Request(`http://127.0.0.1:8787/__outbound/not-an-id/x/storage.internal/`), vars);
    expect(malformed?.status).toBe(404);
  });

  it("is closed where the Worker has no runtime key (the shared mode, production)", async () => {
    const path = new URL(await routeOf(OBJECT_ID)).pathname;
    const response = await serveOutboundRoute(new Request(`http://127.0.0.1:8787${path}/files/x`), env);
    expect(response?.status).toBe(404);
  });
});

describe("interceptedRequest", () => {
  it("is the request as the container sent it: host, path, query, method and body", async () => {
    const route = await routeOf(OBJECT_ID);
    const request = interceptedRequest(new Request(`${route}/files/users/k/blobs/b?partNumber=2&uploadId=u`, { method: "PUT", body: "part" }));
    expect(request?.url).toBe("http://storage.internal/files/users/k/blobs/b?partNumber=2&uploadId=u");
    expect(request?.method).toBe("PUT");
    expect(await request?.text()).toBe("part");
  });
});
