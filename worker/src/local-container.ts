/**
 * Local modes (DESIGN.md "Local modes"): `wrangler dev --enable-containers=false` gives the Durable
 * Object no `ctx.container`. This stand-in implements the part of workerd's container API that
 * @cloudflare/containers 0.3.7 calls, with the same semantics, so the Container class runs its real
 * code path (start, readiness pings, containerFetch, activity timer, hooks). Instead of a process it
 * has an origin: every TCP port forwards to CONTAINER_ORIGIN, where the AppHost runs the service.
 * It is never installed in production, where the runtime supplies `ctx.container`.
 */

/** Signals after which a real container's process is gone (SIGINT, SIGKILL, SIGTERM). */
const STOPPING_SIGNALS = new Set([2, 9, 15]);

/** Hosts of the library's readiness pings; it only looks at whether a response arrives. */
const READINESS_PROBE_HOSTS = new Set(["containerstarthealthcheck", "ping"]);

type ContainerApi = Pick<
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

interface Run {
  exited: Promise<void>;
  exit(error?: unknown): void;
}

export class LocalContainer implements ContainerApi {
  readonly #origin: string;
  readonly #fetch: typeof fetch;
  #run: Run | undefined;

  constructor(origin: string, forward: typeof fetch = (input, init) => fetch(input, init)) {
    this.#origin = new URL(origin).origin;
    this.#fetch = forward;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  start(_options?: ContainerStartupOptions): void {
    if (this.#run) throw new Error("start() cannot be called on a container that is already running.");
    let exit!: Run["exit"];
    const exited = new Promise<void>((resolve, reject) => {
      exit = (error) => (error === undefined ? resolve() : reject(error));
    });
    exited.catch(() => {}); // observed through monitor(); never an unhandled rejection here
    this.#run = { exited, exit };
  }

  monitor(): Promise<void> {
    if (!this.#run) return Promise.reject(new Error("monitor() cannot be called on a container that is not running."));
    return this.#run.exited;
  }

  async destroy(error?: unknown): Promise<void> {
    this.#stop(error);
  }

  signal(signo: number): void {
    if (STOPPING_SIGNALS.has(signo)) this.#stop();
  }

  getTcpPort(port: number): Fetcher {
    const fetcher: Pick<Fetcher, "fetch"> = {
      fetch: (input, init) => this.#forward(port, new Request(input, init)),
    };
    return fetcher as Fetcher;
  }

  // The stand-in runs no process with network access of its own: nothing to configure.
  async setInactivityTimeout(_durationMs: number | bigint): Promise<void> {}
  async interceptOutboundHttp(_addr: string, _binding: Fetcher): Promise<void> {}
  async interceptAllOutboundHttp(_binding: Fetcher): Promise<void> {}
  async interceptOutboundHttps(_addr: string, _binding: Fetcher): Promise<void> {}

  #stop(error?: unknown): void {
    const run = this.#run;
    this.#run = undefined;
    run?.exit(error);
  }

  async #forward(port: number, request: Request): Promise<Response> {
    if (!this.#run) throw new Error(`the container is not running; cannot connect to port ${port}`);
    const url = new URL(request.url);
    // Concatenated, not resolved: a path such as `//x` must stay a path.
    const target = this.#origin + url.pathname + url.search;
    let response: Response;
    try {
      response = await this.#fetch(new Request(target, request), { redirect: "manual" });
    } catch (error) {
      if (request.signal.aborted) throw error;
      // The library retries its readiness pings on this message while the container is running.
      const reason = error instanceof Error ? error.message : String(error);
      throw new Error(`the container is not listening on port ${port} (local origin ${this.#origin}): ${reason}`);
    }
    if (READINESS_PROBE_HOSTS.has(url.hostname)) {
      // Nobody reads a probe's body; cancel it so the connection is released.
      await response.body?.cancel();
      return new Response(null, { status: response.status, headers: response.headers });
    }
    return response;
  }
}

/**
 * Gives `ctx` the stand-in when the runtime supplied no container and a local origin is configured.
 * Must run before `super()` in the Container subclass, whose constructor reads `ctx.container`.
 * (A Proxy around ctx would be rejected by the runtime, hence defineProperty.)
 */
export function installLocalContainer(ctx: DurableObjectState, origin: string | undefined): boolean {
  if (ctx.container !== undefined || !origin) return false;
  Object.defineProperty(ctx, "container", { value: new LocalContainer(origin), configurable: true, enumerable: true });
  return true;
}
