/**
 * Values that reach the Worker at run time rather than through wrangler.toml: a secret in
 * production (`wrangler secret put AUTH_SECRET`), `--var` flags locally (scripts/dev.sh).
 * `wrangler types` cannot see them, so they are merged into its generated `Env` here.
 */
export interface RuntimeVars {
  /** HS256 key that signs user tokens. */
  AUTH_SECRET: string;
  /**
   * Key the Durable Object signs its requests to the upload service with; handed to the container,
   * which refuses unsigned requests (`wrangler secret put INTERNAL_SECRET`; the AppHost generates one).
   */
  INTERNAL_SECRET: string;
  /** Local modes only: where the ctx.container stand-in forwards (see local-container.ts). */
  CONTAINER_ORIGIN?: string;
  /** Browser origins allowed by CORS: comma-separated, or `*`; unset allows loopback origins only (cors.ts). */
  CORS_ALLOWED_ORIGINS?: string;
  /** OTLP/HTTP base URL; unset (production default) means no telemetry is exported. */
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  /** `key=value,key2=value2`, values URL-encoded. */
  OTEL_EXPORTER_OTLP_HEADERS?: string;
  OTEL_SERVICE_NAME?: string;
  /** `key=value,...`, e.g. `service.instance.id=...`; added to every exported span's resource. */
  OTEL_RESOURCE_ATTRIBUTES?: string;
}

declare global {
  interface Env extends RuntimeVars {}
  namespace Cloudflare {
    interface Env extends RuntimeVars {}
  }
}
