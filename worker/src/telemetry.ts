import {
  createSampler,
  type ExporterConfig,
  type OTLPExporterConfig,
  OTLPExporter,
  type ResolveConfigFn,
  type SamplingConfig,
  type TraceConfig,
} from "@microlabs/otel-cf-workers";
import { type Attributes, context, propagation, type SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";

// The library does not re-export the OpenTelemetry SDK types it uses; derive them from its API.
type SpanExporter = Exclude<ExporterConfig, OTLPExporterConfig>;
type ReadableSpan = Parameters<SpanExporter["export"]>[0][number];
type Sampler = Exclude<NonNullable<SamplingConfig["headSampler"]>, { ratio: number }>;

/** Paths probed by the orchestrator; a trace each would bury the real ones. */
const UNTRACED_PATHS = new Set(["/health"]);

const sampleAll = createSampler({ ratio: 1 });
const sampleNone = createSampler({ ratio: 0, acceptRemote: false });

const dropProbes: Sampler = {
  shouldSample(...args) {
    const path = args[4]["url.path"];
    return (typeof path === "string" && UNTRACED_PATHS.has(path) ? sampleNone : sampleAll).shouldSample(...args);
  },
  toString: () => "DropProbesSampler",
};

/** Exports nothing: the production default, where no OTLP endpoint is configured. */
const discard: SpanExporter = {
  export: (_spans, done) => done({ code: 0 /* ExportResultCode.SUCCESS */ }),
  shutdown: async () => {},
};

/**
 * otel-cf-workers configuration for the Worker and its Durable Object, read from the environment.
 * Of request headers the library records only Content-Type, Content-Length, User-Agent and cf-ray,
 * never credentials (Authorization, X-Internal-Signature); test/redaction.test.ts holds it to that.
 */
export const telemetryConfig: ResolveConfigFn<Env> = (env): TraceConfig => {
  const service = { name: env.OTEL_SERVICE_NAME || "worker" };
  // The stand-in container in local modes forwards with the global fetch; leaving it uninstrumented
  // keeps local traces shaped like production (Worker → DO → service, no extra client span).
  const instrumentation = { instrumentGlobalFetch: false, instrumentGlobalCache: false };
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, "");
  if (!endpoint) {
    return { service, instrumentation, exporter: discard, sampling: { headSampler: sampleNone, tailSampler: () => false } };
  }
  const otlp = new OTLPExporter({ url: `${endpoint}/v1/traces`, headers: parseKeyValueList(env.OTEL_EXPORTER_OTLP_HEADERS) });
  const extraResource = parseKeyValueList(env.OTEL_RESOURCE_ATTRIBUTES);
  const exporter = Object.keys(extraResource).length > 0 ? withResourceAttributes(otlp, extraResource) : otlp;
  return { service, instrumentation, exporter, sampling: { headSampler: dropProbes } };
};

/** The host a container sends its telemetry to; its Durable Object's outbound handler forwards it (telemetryOutbound). */
export const TELEMETRY_HOST = "otlp.internal";

/**
 * A container's OTLP/HTTP export (POST /v1/traces, /v1/metrics, /v1/logs), forwarded to the Worker's
 * OTEL_EXPORTER_OTLP_ENDPOINT with its OTEL_EXPORTER_OTLP_HEADERS added here: the endpoint's credentials
 * never enter a container, and a container without internet access can still export.
 */
export async function telemetryOutbound(request: Request, env: Env): Promise<Response> {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, "");
  const { pathname } = new URL(request.url);
  if (!endpoint || request.method !== "POST" || !/^\/v1\/(traces|metrics|logs)$/.test(pathname)) {
    return new Response("Not an OTLP export this Worker forwards.", { status: 404 });
  }
  const headers = new Headers(parseKeyValueList(env.OTEL_EXPORTER_OTLP_HEADERS));
  for (const name of ["Content-Type", "Content-Encoding"]) {
    const value = request.headers.get(name);
    if (value) headers.set(name, value);
  }
  return fetch(endpoint + pathname, { method: "POST", headers, body: request.body });
}

/** Parses the OTEL_* list format `key=value,key2=value2` (values may be URL-encoded). */
export function parseKeyValueList(list: string | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const item of list?.split(",") ?? []) {
    const separator = item.indexOf("=");
    if (separator <= 0) continue;
    const key = item.slice(0, separator).trim();
    const raw = item.slice(separator + 1).trim();
    let value = raw;
    try {
      value = decodeURIComponent(raw);
    } catch {
      // Not valid percent-encoding: keep the value as written.
    }
    result[key] = value;
  }
  return result;
}

/**
 * Adds attributes (e.g. OTEL_RESOURCE_ATTRIBUTES' service.instance.id) to every exported span's
 * resource. otel-cf-workers has no setting for this (its postProcessor is never called), so the
 * spans are re-dressed on their way to the exporter; the library's own attributes win on conflict.
 */
export function withResourceAttributes(inner: SpanExporter, extra: Record<string, string>): SpanExporter {
  type Resource = ReadableSpan["resource"];
  const merged = new WeakMap<Resource, Resource>();
  const mergedResource = (resource: Resource): Resource => {
    let result = merged.get(resource);
    if (result === undefined) {
      const attributes = { ...extra, ...resource.attributes };
      result = Object.create(resource, { attributes: { value: attributes, enumerable: true } }) as Resource;
      merged.set(resource, result);
    }
    return result;
  };
  return {
    export(spans, done) {
      const dressed = spans.map(
        (span) => Object.create(span, { resource: { value: mergedResource(span.resource), enumerable: true } }) as ReadableSpan,
      );
      inner.export(dressed, done);
    },
    shutdown: () => inner.shutdown(),
    forceFlush: inner.forceFlush ? () => inner.forceFlush!() : undefined,
  };
}

/**
 * Writes the W3C trace context of the active span into `headers`, replacing any the client sent.
 * Needed where the instrumentation does not propagate by itself: Durable Object stubs obtained with
 * getByName, and the container's TCP port.
 */
export function injectTraceContext(headers: Headers): void {
  headers.delete("traceparent");
  headers.delete("tracestate");
  propagation.inject(context.active(), headers, { set: (carrier, key, value) => carrier.set(key, value) });
}

/**
 * Runs `work` inside a span of its own (a child of the active span), recording a thrown error on it.
 * For what the instrumentation does not trace by itself: a container's start, calls to Durable Objects
 * over RPC.
 */
export function inSpan<T>(name: string, work: () => Promise<T>, options: { kind?: SpanKind; attributes?: Attributes } = {}): Promise<T> {
  return trace.getTracer("upload-worker").startActiveSpan(name, options, async (span) => {
    try {
      return await work();
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}
