import { env } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { telemetryOutbound } from "../src/telemetry";
import type { ReceivedExport } from "./otlp-collector";

// A container's telemetry leaves through its Durable Object (otlp.internal), to the collector of vitest.config.ts.
const otlpOrigin = inject("otlpOrigin");

describe("telemetryOutbound", () => {
  it("forwards an OTLP export to the Worker's endpoint with the endpoint's headers added there", async () => {
    const marker = `container-export-${crypto.randomUUID()}`;
    const withHeaders = { ...env, OTEL_EXPORTER_OTLP_HEADERS: "x-otlp-api-key=from%20the%20worker" };
    const response = await telemetryOutbound(
      new Request("http://otlp.internal/v1/traces", {
        method: "POST",
        headers: { "Content-Type": "application/x-protobuf", "x-otlp-api-key": "forged by the container" },
        body: marker,
      }),
      withHeaders,
    );
    expect(response.status).toBe(200);
    await response.text();

    const received = (await (await fetch(`${otlpOrigin}/received`)).json()) as ReceivedExport[];
    const forwarded = received.find((r) => r.body === marker);
    expect(forwarded?.headers["content-type"]).toBe("application/x-protobuf");
    expect(forwarded?.headers["x-otlp-api-key"]).toBe("from the worker");
  });

  it("forwards nothing but OTLP exports, and nothing without an endpoint", async () => {
    for (const request of [
      new Request("http://otlp.internal/v1/traces"),
      new Request("http://otlp.internal/admin", { method: "POST", body: "x" }),
      new Request("http://otlp.internal/v1/traces/../../received", { method: "POST", body: "x" }),
    ]) {
      const response = await telemetryOutbound(request, env);
      expect(response.status, `${request.method} ${request.url}`).toBe(404);
      await response.text();
    }
    const unset = await telemetryOutbound(new Request("http://otlp.internal/v1/traces", { method: "POST", body: "x" }), {
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: undefined,
    });
    expect(unset.status).toBe(404);
    await unset.text();
  });
});
