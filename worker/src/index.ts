import { instrument, instrumentDO } from "@microlabs/otel-cf-workers";
import { ADMIN_PREFIX, handleAdmin } from "./admin";
import { authenticate } from "./auth";
import { preflight, withCors } from "./cors";
import { SIGNATURE_HEADER, TIMESTAMP_HEADER } from "./internal-signature";
import { problem } from "./problem";
import { injectTraceContext, telemetryConfig } from "./telemetry";
import { UserAppContainer as UserAppContainerClass } from "./user-app-container";
import "./env";

/** Path prefixes served by the user's upload container; the admin API (ADMIN_PREFIX) and /health are the Worker's own. */
const USER_ROUTES = ["/files", "/uploads"];

const handler = {
  async fetch(request, env): Promise<Response> {
    const answered = preflight(request, env.CORS_ALLOWED_ORIGINS);
    if (answered) return answered;
    return withCors(request, await route(request, env), env.CORS_ALLOWED_ORIGINS);
  },
} satisfies ExportedHandler<Env>;

async function route(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/health") return Response.json({ status: "ok" });
  const admin = underPrefix(url.pathname, ADMIN_PREFIX);
  if (!admin && !USER_ROUTES.some((route) => underPrefix(url.pathname, route))) {
    return problem(404, `No route for ${url.pathname}.`);
  }

  const auth = await authenticate(request, env);
  if (!auth.ok) return problem(auth.status, auth.detail, auth.status === 401 ? { "WWW-Authenticate": 'Bearer realm="files"' } : undefined);
  if (admin) return handleAdmin(request, env, auth);

  const stub = env.USER_CONTAINERS.getByName(auth.userId);
  try {
    return await stub.fetch(toUserContainer(request, auth.userId));
  } catch (error) {
    console.error(`user ${auth.userId}: Durable Object request failed`, error);
    return problem(502, "The upload service for this user could not be reached.");
  }
}

function underPrefix(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/**
 * The request as the user's container should see it: same method, path, query and (streaming) body;
 * the credentials replaced by the verified identity; the public origin and the trace context added.
 */
function toUserContainer(request: Request, userId: string): Request {
  const url = new URL(request.url);
  const headers = new Headers(request.headers);
  headers.delete("Authorization");
  headers.delete("Expect"); // 100-continue was the edge's business with the client
  headers.delete(TIMESTAMP_HEADER); // only the Durable Object signs
  headers.delete(SIGNATURE_HEADER);
  headers.set("X-User-Id", userId); // replaces any client-supplied value
  headers.set("X-Forwarded-Host", url.host);
  headers.set("X-Forwarded-Proto", url.protocol.slice(0, -1));
  injectTraceContext(headers);
  return new Request(request, { headers, redirect: "manual" });
}

export default instrument(handler, telemetryConfig);

/** The per-user Durable Object, traced ("Durable Object Fetch <user>" spans). */
export const UserAppContainer = instrumentDO(UserAppContainerClass, telemetryConfig);
export type UserAppContainer = UserAppContainerClass; // for the typed namespace in worker-configuration.d.ts

/** What answers a container's outbound requests for its Durable Object (the Container class finds it in ctx.exports). */
export { ContainerProxy } from "@cloudflare/containers";

/** The list of users' containers behind the admin API; called over RPC only, so not instrumented. */
export { ContainerDirectory } from "./container-directory";
