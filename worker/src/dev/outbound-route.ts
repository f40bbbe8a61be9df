/**
 * The local stand-in for Cloudflare's outbound interception (docs/local-modes.md). On Cloudflare, a container's
 * request to a host its Durable Object intercepts (storage.internal, otlp.internal) is answered by the object's
 * outbound handler. The local container runtime cannot catch an instance's requests, so the instance is pointed
 * at this route of the Worker instead: each URL to an intercepted host in its environment becomes
 * `{LOCAL_WORKER_URL}/__outbound/{durableObjectId}/{key}/{host}`, and the route hands the request to that
 * Durable Object, which passes it to the fetcher the Container class registered for the host (ContainerProxy
 * and the handler: the code that answers it on Cloudflare). `key` is an HMAC of the object's id under the local
 * runtime's key, so an instance reaches only its own object's handlers.
 */
const ROUTE = "/__outbound/";
const DURABLE_OBJECT_ID = /^[0-9a-f]{64}$/;
const HOST = /^[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$/;
const encoder = new TextEncoder();

/** The key of the route for one Durable Object: HMAC-SHA256 of its id under the runtime's key, in hex. */
async function routeKey(runtimeToken: string, durableObjectId: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(runtimeToken), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`outbound ${durableObjectId}`));
  return [...new Uint8Array(mac)].map((byte) => byte.toString(16).padStart(2, "0")).join("");
}

/**
 * The instance's environment with every `http://{host}…` value whose host is intercepted rewritten to the route
 * (`workerUrl`: the Worker as the instance reaches it). Other values are kept.
 */
export async function throughOutboundRoute(
  env: Record<string, string>,
  intercepted: (host: string) => boolean,
  workerUrl: string,
  runtimeToken: string,
  durableObjectId: string,
): Promise<Record<string, string>> {
  const base = `${workerUrl.replace(/\/+$/, "")}${ROUTE}${durableObjectId}/${await routeKey(runtimeToken, durableObjectId)}/`;
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    const url = URL.canParse(value) ? new URL(value) : undefined;
    const local = url?.protocol === "http:" && !url.port && intercepted(url.hostname);
    result[name] = local ? base + url.hostname + (url.pathname + url.search).replace(/\/$/, "") : value;
  }
  return result;
}

/** A request of the route, as `{ durableObjectId, key, request as the container sent it }`; undefined for any other path. */
function parse(request: Request): { durableObjectId: string; key: string; intercepted: Request } | undefined {
  const url = new URL(request.url);
  if (!url.pathname.startsWith(ROUTE)) return undefined;
  const [durableObjectId = "", key = "", host = "", ...rest] = url.pathname.slice(ROUTE.length).split("/");
  if (!DURABLE_OBJECT_ID.test(durableObjectId) || !HOST.test(host)) return undefined;
  return { durableObjectId, key, intercepted: new Request(`http://${host}/${rest.join("/")}${url.search}`, request) };
}

/**
 * In the Worker: a request on the route, its key checked and handed to its Durable Object (`undefined` when the
 * request is not for the route). 403 for a wrong key: the instance of one object cannot use another's route.
 */
export async function serveOutboundRoute(request: Request, env: Env & { CONTAINER_RUNTIME_TOKEN?: string }): Promise<Response | undefined> {
  if (!new URL(request.url).pathname.startsWith(ROUTE)) return undefined;
  const route = parse(request);
  const token = env.CONTAINER_RUNTIME_TOKEN;
  if (!route || !token) return new Response("Not a route of a local instance.", { status: 404 });
  const expected = encoder.encode(await routeKey(token, route.durableObjectId));
  const presented = encoder.encode(route.key);
  if (presented.byteLength !== expected.byteLength || !crypto.subtle.timingSafeEqual(presented, expected)) {
    return new Response("This key does not open this Durable Object's route.", { status: 403 });
  }
  const stub = env.USER_CONTAINERS.get(env.USER_CONTAINERS.idFromString(route.durableObjectId));
  return stub.fetch(request);
}

/** In the Durable Object: the route's request as the container sent it (`http://{host}/…`), or undefined. */
export function interceptedRequest(request: Request): Request | undefined {
  return parse(request)?.intercepted;
}
