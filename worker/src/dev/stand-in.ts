// What the two local stand-ins for workerd's ctx.container (runtime-container.ts, shared-container.ts) share.

/** Hosts of the Container class's readiness pings; it only looks at whether a response arrives. */
const READINESS_PROBE_HOSTS = new Set(["containerstarthealthcheck", "ping"]);

/**
 * A request to a stand-in container's TCP port, sent to the local server behind that port (`origin`).
 * A failed connection is reported with workerd's "not listening" wording, which the Container class
 * retries on while the container is running; a readiness ping's body is cancelled, since nobody reads it.
 */
export async function forwardToPort(origin: string, port: number, request: Request): Promise<Response> {
  const url = new URL(request.url);
  // Concatenated, not resolved: a path such as `//x` must stay a path.
  const target = origin + url.pathname + url.search;
  let response: Response;
  try {
    response = await fetch(new Request(target, request), { redirect: "manual" });
  } catch (error) {
    if (request.signal.aborted) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`the container is not listening on port ${port} (local origin ${origin}): ${reason}`);
  }
  if (READINESS_PROBE_HOSTS.has(url.hostname)) {
    await response.body?.cancel();
    return new Response(null, { status: response.status, headers: response.headers });
  }
  return response;
}

/** The part of workerd's container API (`ctx.container`) that @cloudflare/containers 0.3.7 calls. */
export type ContainerApi = Pick<
  Container,
  | "running"
  | "start"
  | "monitor"
  | "destroy"
  | "signal"
  | "getTcpPort"
  | "setInactivityTimeout"
  | "interceptOutboundHttp"
  | "interceptAllOutboundHttp"
  | "interceptOutboundHttps"
>;

/** The end of one run of a container: `exited` settles as workerd's monitor() does, when `exit` is called. */
export interface Exit {
  /** Resolves on a clean exit, rejects with the reason otherwise. */
  exited: Promise<void>;
  exit(error?: unknown): void;
}

export function newExit(): Exit {
  let exit!: Exit["exit"];
  const exited = new Promise<void>((resolve, reject) => {
    exit = (error) => (error === undefined ? resolve() : reject(error));
  });
  exited.catch(() => {}); // observed through monitor(); never an unhandled rejection here
  return { exited, exit };
}
