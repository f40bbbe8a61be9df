import type { State } from "@cloudflare/containers";
import { SpanKind } from "@opentelemetry/api";
import type { AuthResult } from "./auth";
import { DIRECTORY_NAME, type DirectoryEntry } from "./container-directory";
import { problem } from "./problem";
import { injectTraceContext, inSpan } from "./telemetry";
import { isValidUserId, USER_ID_RULE } from "./user-id.js";

/** Where the admin API lives; the Worker routes every path under it here. */
export const ADMIN_PREFIX = "/admin/containers";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;

/** One user's container as the admin API shows it. Times are ISO 8601, null when it has not happened yet. */
export interface ContainerView {
  user: string;
  /** `running`, `healthy`, `stopping` (a stop was just sent), `stopped`, or `stopped_with_code` (exited; onStop pending). */
  status: string;
  /** The exit code of its last stop, null until it has stopped once. */
  exitCode: number | null;
  lastChange: string;
  lastStart: string | null;
  lastStop: string | null;
}

/**
 * The admin API over users' containers (docs/admin-api.md): list them from the directory, show one with its
 * Durable Object's live state, stop (SIGTERM) or destroy (SIGKILL) one through its Durable Object. Only for
 * tokens with the admin role; nothing here ever starts a container.
 */
export async function handleAdmin(request: Request, env: Env, auth: AuthResult & { ok: true }): Promise<Response> {
  if (!auth.admin) return problem(403, "This token does not carry the admin role; the admin API is for admins only.");
  try {
    return await route(request, env);
  } catch (error) {
    console.error(`admin API: ${request.method} ${new URL(request.url).pathname} failed`, error);
    return problem(502, "The container directory or the user's Durable Object could not be reached; try again.");
  }
}

async function route(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const rest = url.pathname.slice(ADMIN_PREFIX.length);
  if (rest === "" || rest === "/") {
    return request.method === "GET" ? list(url, env) : notAllowed("GET");
  }
  const [user, action, ...extra] = rest.slice(1).split("/");
  if (extra.length > 0 || user === undefined || (action !== undefined && action !== "stop")) {
    return problem(404, `No route for ${url.pathname}.`);
  }
  if (!isValidUserId(user)) return problem(400, `'${user}' is not a valid user id (${USER_ID_RULE}).`);
  if (action === "stop") return request.method === "POST" ? shutDown(env, user, "stop") : notAllowed("POST");
  if (request.method === "GET") return show(env, user);
  if (request.method === "DELETE") return shutDown(env, user, "destroy");
  return notAllowed("GET, DELETE");
}

/** `GET /admin/containers?cursor=&limit=`: from the directory alone, so that listing wakes no one. */
async function list(url: URL, env: Env): Promise<Response> {
  const limitParam = url.searchParams.get("limit");
  const limit = limitParam === null ? DEFAULT_LIMIT : /^\d{1,4}$/.test(limitParam) ? Number(limitParam) : NaN;
  if (!(limit >= 1 && limit <= MAX_LIMIT)) {
    return problem(400, `limit must be a whole number from 1 to ${MAX_LIMIT}.`);
  }
  const cursor = url.searchParams.get("cursor") || null;
  if (cursor !== null && !isValidUserId(cursor)) return problem(400, "cursor is not one this API handed out.");

  const page = await inSpan("ContainerDirectory list", () => directory(env).list(cursor, limit), rpc(DIRECTORY_NAME));
  return Response.json({ containers: page.entries.map((entry) => view(entry)), cursor: page.next });
}

/** `GET /admin/containers/{user}`: the directory's record with the Durable Object's live state. */
async function show(env: Env, user: string): Promise<Response> {
  const entry = await known(env, user);
  if (entry === null) return unknown(user);
  const state = await (await toDurableObject(env, user, "GET", `${ADMIN_PREFIX}/${user}`)).json<State>();
  return Response.json(view(entry, state));
}

/** `POST …/{user}/stop` and `DELETE …/{user}`: a signal through the user's Durable Object; 202, or 200 if none ran. */
async function shutDown(env: Env, user: string, how: "stop" | "destroy"): Promise<Response> {
  const entry = await known(env, user);
  if (entry === null) return unknown(user);
  const path = how === "stop" ? `${ADMIN_PREFIX}/${user}/stop` : `${ADMIN_PREFIX}/${user}`;
  const { signalled } = await (await toDurableObject(env, user, how === "stop" ? "POST" : "DELETE", path)).json<{ signalled: boolean }>();
  if (!signalled) {
    return Response.json({ ...view(entry), detail: `The container of '${user}' is not running; there was nothing to ${how}.` });
  }
  const signal = how === "stop" ? "SIGTERM" : "SIGKILL";
  return Response.json(
    { ...view(entry), status: "stopping", detail: `${signal} sent to the container of '${user}'; its status becomes stopped when it has exited.` },
    { status: 202, headers: { Location: `${ADMIN_PREFIX}/${user}` } },
  );
}

/** A request to the user's Durable Object, which answers admin paths itself (UserAppContainer.fetch), in this trace. */
async function toDurableObject(env: Env, user: string, method: string, path: string): Promise<Response> {
  const headers = new Headers();
  injectTraceContext(headers); // getByName stubs are not instrumented (see index.ts)
  const response = await env.USER_CONTAINERS.getByName(user).fetch(new Request(`https://user-app-container${path}`, { method, headers }));
  if (!response.ok) throw new Error(`the Durable Object of '${user}' answered ${method} ${path} with ${response.status}: ${await response.text()}`);
  return response;
}

function known(env: Env, user: string): Promise<DirectoryEntry | null> {
  return inSpan("ContainerDirectory get", () => directory(env).get(user), rpc(DIRECTORY_NAME));
}

function directory(env: Env) {
  return env.CONTAINER_DIRECTORY.getByName(DIRECTORY_NAME);
}

/** A call to the directory over RPC, as a client span (the instrumentation does not trace RPC). */
function rpc(name: string) {
  return { kind: SpanKind.CLIENT, attributes: { "do.id.name": name } };
}

function view(entry: DirectoryEntry, state?: State): ContainerView {
  return {
    user: entry.user,
    status: state?.status ?? entry.status,
    exitCode: (state?.status === "stopped_with_code" ? state.exitCode : undefined) ?? entry.exitCode,
    lastChange: iso(state?.lastChange ?? entry.lastChange)!,
    lastStart: iso(entry.lastStart),
    lastStop: iso(entry.lastStop),
  };
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function unknown(user: string): Response {
  return problem(404, `No container is known for user '${user}': it has not started since the directory began keeping track.`);
}

function notAllowed(allow: string): Response {
  return problem(405, `Allowed here: ${allow}.`, { Allow: allow });
}
