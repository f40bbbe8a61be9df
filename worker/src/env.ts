/**
 * Values that reach the Worker at run time rather than through wrangler.toml: secrets and variables
 * in production (`wrangler secret put AUTH_SECRET`, dashboard variables), an env file locally
 * (scripts/dev.sh).
 * `wrangler types` cannot see them, so they are merged into its generated `Env` here.
 */
export interface RuntimeVars {
  /**
   * HS256 key that signs user tokens. At least one of AUTH_SECRET and AUTH_JWKS_URL must be set; with
   * both, HS256 tokens are checked with this key and RS256/ES256 tokens with the key set (auth.ts).
   */
  AUTH_SECRET?: string;
  /** URL of a JSON Web Key Set (an identity provider's `jwks_uri`) whose public keys verify RS256/ES256 tokens. */
  AUTH_JWKS_URL?: string;
  /** When set, every token's `iss` must equal it (HS256 tokens too). */
  AUTH_ISSUER?: string;
  /** When set, every token's `aud` must be or contain it (HS256 tokens too). */
  AUTH_AUDIENCE?: string;
  /**
   * The token claim that grants the admin API (/admin/containers) when its value is `admin` or an array
   * containing it; default `role`. E.g. `roles`, or an identity provider's namespaced claim.
   */
  AUTH_ADMIN_CLAIM?: string;
  /**
   * Key the Durable Object signs its requests to the upload service with; handed to the container,
   * which refuses unsigned requests (`wrangler secret put INTERNAL_SECRET`; the AppHost generates one).
   */
  INTERNAL_SECRET: string;
  /**
   * Where each user's container keeps its files:
   * - `r2` (the default): the R2 bucket bound as FILES (wrangler.toml), which the container reaches at
   *   http://storage.internal through its Durable Object's outbound handler (storage-gateway.ts): it holds no key
   *   and reaches only its own user's keys.
   * - `s3`: any S3-compatible store through its S3 API, with the R2_* settings below handed to every container:
   *   this trusts each container with the whole bucket, every user's files (docs/security.md).
   * - `disk`: the container's own disk, lost when it sleeps.
   */
  FILE_STORAGE?: string;
  /** `FILE_STORAGE=s3`: the endpoint (R2_ENDPOINT, or R2's for R2_ACCOUNT_ID), the bucket and its keys. */
  R2_ENDPOINT?: string;
  R2_ACCOUNT_ID?: string;
  R2_BUCKET?: string;
  R2_ACCESS_KEY_ID?: string;
  R2_SECRET_ACCESS_KEY?: string;
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
