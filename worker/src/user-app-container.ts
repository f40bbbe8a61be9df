import { Container, type StopParams } from "@cloudflare/containers";
import type { DurableObject } from "cloudflare:workers";
import { ADMIN_PREFIX } from "./admin";
import { type ContainerDirectory, DIRECTORY_NAME } from "./container-directory";
import { signForUploadService } from "./internal-signature";
import { problem } from "./problem";
import { STORAGE_BUCKET, STORAGE_HOST, type StorageParams, storageOutbound, userStorageKey } from "./storage-gateway";
import { injectTraceContext, inSpan, TELEMETRY_HOST, telemetryOutbound } from "./telemetry";

/**
 * One per user (the Worker addresses it with `getByName(userId)`): a Durable Object that owns that
 * user's upload-service container, starts it on demand and lets it sleep when idle.
 */
export class UserAppContainer extends Container<Env> {
  // The container's only ways out: its storage and its telemetry, answered in this Worker (storage-gateway.ts,
  // telemetry.ts). Assignments, not fields: the class's static setters register them under this class's name.
  static {
    this.outboundHandlers = { storage: storageOutbound };
    this.outboundByHost = { [TELEMETRY_HOST]: telemetryOutbound };
  }

  // Port the upload service listens on inside the container (ASPNETCORE_HTTP_PORTS below).
  override defaultPort = 8000;
  // Stop the container after this much inactivity; the next request starts it again.
  override sleepAfter = "10m";
  /** What the Worker's secrets and vars say the container gets, or what is wrong with them. */
  readonly #settings = containerSettings(this.env);
  // Environment of the container process: the signing key, the storage, telemetry when the Worker exports it.
  override envVars = "error" in this.#settings ? {} : this.#settings.envVars;
  // No internet: the container reaches only the hosts this object answers (outboundByHost above), except with
  // `s3` storage, which connects to its endpoint directly.
  override enableInternet = !("error" in this.#settings) && this.#settings.storage === "s3";

  /** Learnt from the Worker's X-User-Id where the runtime gives the object no name. */
  #requestUserId: string | undefined;
  /** Whether this object has bound the storage handler to its user (once: the library persists the binding). */
  #storageBound = false;
  /** The reports to the directory still under way, in the order of the events (see #tellDirectory). */
  #directoryReports: Promise<void> = Promise.resolve();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx as DurableObject["ctx"], env); // the same object; only its Props type parameter differs
  }

  override async fetch(request: Request): Promise<Response> {
    // The Worker sends a path under ADMIN_PREFIX here only from the admin API (admin.ts), after checking the
    // admin role; user requests reach this object only for the user routes (/files, /uploads).
    if (new URL(request.url).pathname.startsWith(`${ADMIN_PREFIX}/`)) return this.#admin(request);
    this.#requestUserId ??= request.headers.get("X-User-Id") ?? undefined;
    if ("error" in this.#settings) return problem(500, this.#settings.error);
    // The container's TCP port does not propagate trace context: hand it this object's span.
    const headers = new Headers(request.headers);
    injectTraceContext(headers);
    // A PATCH with a streaming body fails through container.fetch() on Cloudflare (cloudflare/containers#116):
    // send it as POST with X-HTTP-Method-Override, which tus servers (ours included) honour.
    const method = request.method === "PATCH" ? "POST" : request.method;
    if (method !== request.method) headers.set("X-HTTP-Method-Override", request.method);
    // The service serves only requests signed with the secret it shares with this object.
    await signForUploadService(this.#settings.envVars.INTERNAL_SECRET, method, request.url, headers);
    try {
      return await asProblemDetails(await super.fetch(new Request(request, { method, headers })), request.method);
    } catch (error) {
      console.error(`user ${this.userId}: request to the upload container failed`, error);
      return problem(502, "The upload service for this user could not be reached.");
    }
  }

  /**
   * A wake (start and readiness wait) is a span of its own under this object's span. Before the start, the
   * storage handler is bound to this object's user: the handler takes the user from these params only.
   */
  override async startAndWaitForPorts(...args: Parameters<Container["startAndWaitForPorts"]>): Promise<void> {
    return inSpan("UserAppContainer start", async () => {
      if (!this.#storageBound && !("error" in this.#settings) && this.#settings.storage === "r2") {
        await this.setOutboundByHost<StorageParams>(STORAGE_HOST, "storage", { userKey: await userStorageKey(this.userId) });
        this.#storageBound = true;
      }
      return super.startAndWaitForPorts(...args);
    });
  }

  override onStart(): void {
    console.log(`user ${this.userId}: upload container started`);
    const at = Date.now();
    this.#tellDirectory((directory, user) => directory.started(user, at));
  }

  override onStop({ exitCode, reason }: StopParams): void {
    console.log(`user ${this.userId}: upload container stopped (exit code ${exitCode}, ${reason})`);
    const at = Date.now();
    this.#tellDirectory((directory, user) => directory.stopped(user, exitCode, at));
  }

  /**
   * The admin API's requests for this object's container (admin.ts): GET its state, POST …/stop (SIGTERM),
   * DELETE (SIGKILL). A signal goes only to a running container (`signalled` says whether it did); onStop
   * follows the exit, as after any stop. Over HTTP rather than RPC: the tracing wrapper (instrumentDO) calls
   * RPC methods without their `this`, and a fetch carries the trace context.
   */
  async #admin(request: Request): Promise<Response> {
    if (request.method === "GET") return Response.json(await this.getState());
    const running = this.ctx.container?.running ?? false;
    if (running) await (request.method === "DELETE" ? this.destroy() : this.stop("SIGTERM"));
    return Response.json({ signalled: running });
  }

  /**
   * Reports a start or stop to the directory (the admin API's list), after the reports before it and
   * without holding up the container's start or stop: the directory is one object for all users. A failed
   * report is logged; the entry is corrected by this container's next start or stop.
   */
  #tellDirectory(report: (directory: DurableObjectStub<ContainerDirectory>, user: string) => Promise<unknown>): void {
    const user = this.userId;
    this.#directoryReports = this.#directoryReports
      .then(() => inSpan("ContainerDirectory update", () => report(this.env.CONTAINER_DIRECTORY.getByName(DIRECTORY_NAME), user)))
      .then(
        () => {},
        (error) => console.error(`user ${user}: the container directory was not updated`, error),
      );
  }

  override onError(error: unknown): never {
    console.error(`user ${this.userId}: upload container error`, error);
    throw error;
  }

  get userId(): string {
    return this.ctx.id.name ?? this.#requestUserId ?? this.ctx.id.toString();
  }
}

/** Where the container keeps its files: the `FILE_STORAGE` var (env.ts). */
export type FileStorage = "r2" | "s3" | "disk";

/** The signature the s3 backend sends, unchecked: the handler decides by the user bound to it (see above). */
const UNCHECKED_KEY = "no-key-the-durable-object-answers";

export type ContainerSettings = { storage: FileStorage; envVars: Record<string, string> & { INTERNAL_SECRET: string } } | { error: string };

export function containerSettings(env: Env): ContainerSettings {
  // The key the service checks this object's signatures with (a wrangler secret; see internal-signature.ts).
  if (!env.INTERNAL_SECRET) return { error: "The upload service's signing key is not configured (INTERNAL_SECRET is unset)." };
  const envVars = {
    ASPNETCORE_HTTP_PORTS: "8000", // = defaultPort
    OTEL_SERVICE_NAME: "upload-service",
    INTERNAL_SECRET: env.INTERNAL_SECRET,
  };
  const storage = env.FILE_STORAGE || "r2";
  if (!env.FILE_STORAGE && (env.R2_BUCKET || env.R2_ACCESS_KEY_ID)) {
    // A deployment from before the binding: its files are in that bucket, which r2 storage would not look in.
    return {
      error:
        "R2_BUCKET and the R2 keys are set but FILE_STORAGE is not: set FILE_STORAGE=s3 to keep using that bucket " +
        "(every container then holds its keys), or move the files into the bound bucket and delete the R2_* secrets (docs/deploy.md).",
    };
  }
  if (storage === "r2") {
    // The SDK signs every request; with no real key to sign with, it gets a placeholder that nobody checks.
    Object.assign(envVars, s3Settings(`http://${STORAGE_HOST}`, STORAGE_BUCKET, UNCHECKED_KEY, UNCHECKED_KEY));
  } else if (storage === "s3") {
    const endpoint = env.R2_ENDPOINT || (env.R2_ACCOUNT_ID && `https://${env.R2_ACCOUNT_ID}.r2.cloudflarestorage.com`);
    if (!endpoint || !env.R2_BUCKET || !env.R2_ACCESS_KEY_ID || !env.R2_SECRET_ACCESS_KEY) {
      return { error: "FILE_STORAGE is s3: set R2_ENDPOINT or R2_ACCOUNT_ID, R2_BUCKET, R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY." };
    }
    Object.assign(envVars, s3Settings(endpoint, env.R2_BUCKET, env.R2_ACCESS_KEY_ID, env.R2_SECRET_ACCESS_KEY));
  } else if (storage !== "disk") {
    return { error: `FILE_STORAGE is ${storage}: use r2, s3 or disk.` };
  }
  if (env.OTEL_EXPORTER_OTLP_ENDPOINT) {
    // Through this object (telemetryOutbound), which adds the endpoint's headers: the container holds none.
    Object.assign(envVars, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://${TELEMETRY_HOST}`, OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf" });
  }
  return { storage: storage as FileStorage, envVars };
}

function s3Settings(serviceUrl: string, bucket: string, accessKeyId: string, secretAccessKey: string): Record<string, string> {
  return {
    Storage__Provider: "s3",
    Storage__S3__ServiceUrl: serviceUrl,
    Storage__S3__Bucket: bucket,
    Storage__S3__AccessKeyId: accessKeyId,
    Storage__S3__SecretAccessKey: secretAccessKey,
    Storage__S3__Region: "auto",
  };
}

/**
 * How Cloudflare refuses a start beyond `max_instances` (through monitor(); the Container class then
 * answers 500 "Failed to start container: …"). The local container runtime refuses with the same words.
 */
const MAX_INSTANCES_REACHED = /maximum number of running container instances exceeded/i;
/** A user refused for lack of an instance may retry after this long (an instance stops, or one is provisioned). */
const NO_INSTANCE_RETRY_AFTER_SECONDS = 10;

/**
 * Every error the user sees is problem details. Two kinds of error response reach the DO without them:
 * the Container class answers its own failures (container could not start, no instance, rate limit,
 * proxy error) in plain text, recognised by the exact content type its `new Response(string)` gets; and
 * the container's HTTP server may reject a request before the app sees it (Kestrel answers a path with
 * a NUL in it with an empty 400). Other headers (e.g. Content-Range of a 416) are kept.
 */
export async function asProblemDetails(response: Response, method: string): Promise<Response> {
  if (response.status < 400) return response;
  const contentType = response.headers.get("Content-Type");
  const fromLibrary = contentType === "text/plain;charset=UTF-8" && [429, 500, 503].includes(response.status);
  const empty = contentType === null;
  if (!fromLibrary && !empty) return response;

  // Read the (short) body either way: an unread body keeps the container awake (containers#242).
  const text = await response.text();
  const detail = fromLibrary ? text : undefined;
  const noInstance = fromLibrary && (response.status === 503 || MAX_INSTANCES_REACHED.test(text));
  const status = noInstance ? 503 : fromLibrary && response.status === 500 ? 502 : response.status;
  const headers = new Headers(response.headers);
  headers.delete("Content-Length");
  if (noInstance) headers.set("Retry-After", String(NO_INSTANCE_RETRY_AFTER_SECONDS));
  const result = problem(status, detail ?? "The upload service rejected the request.", headers);
  return method === "HEAD" ? new Response(null, { status, headers: result.headers }) : result;
}
