import { throughOutboundRoute } from "./outbound-route";
import { type ContainerApi, type Exit, forwardToPort, newExit } from "./stand-in";

/** An instance as the local container runtime describes it (AppHost/ContainerRuntime). */
interface Instance {
  id: string;
  /** Container port → the loopback port it is published on. */
  ports: Record<string, number>;
}

interface Run extends Exit {
  /** The runtime's answer to the start request: rejects when it refused (e.g. max_instances reached). */
  instance: Promise<Instance>;
}

/** What the runtime says when it no longer knows an instance (the AppHost restarted). */
class UnknownInstance extends Error {}

/** How long the runtime holds a request for an instance's exit before answering "still running". */
const EXIT_POLL_SECONDS = 30;
const RETRY_AFTER_ERROR_MS = 1000;

/**
 * The `ctx.container` of the per-user local modes (docs/local-modes.md): each Durable Object gets its
 * own instance of the upload service from the local container runtime the AppHost runs (at `runtime`,
 * requests authorized with `token`). start() asks for an instance with the environment the Durable
 * Object passes; getTcpPort() reaches the instance's published port; signal() and destroy() reach its
 * process; monitor() settles with its real exit code. It is installed only by the development entry
 * point (./index.ts), so nothing here is deployed.
 */
export class RuntimeContainer implements ContainerApi {
  readonly #runtime: string;
  readonly #token: string;
  readonly #durableObjectId: string;
  /** The Worker as instances reach it, for the outbound route (undefined: URLs in the environment are kept). */
  readonly #workerUrl: string | undefined;
  #run: Run | undefined;
  /** What the Container class registered to answer the instance's outbound requests: by host, and for any host. */
  readonly #outboundByHost = new Map<string, Fetcher>();
  #outboundForAll: Fetcher | undefined;

  /** The name the instance is shown under (the user id), asked for at each start. */
  name: () => string;

  constructor(runtime: string, token: string, durableObjectId: string, workerUrl?: string) {
    this.#runtime = new URL(runtime).origin;
    this.#token = token;
    this.#durableObjectId = durableObjectId;
    this.#workerUrl = workerUrl;
    this.name = () => durableObjectId;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  start(options?: ContainerStartupOptions): void {
    if (this.#run) throw new Error("start() cannot be called on a container that is already running.");
    const name = this.name();
    const instance = this.#instanceEnv(options?.env ?? {}).then((env) =>
      this.#call<Instance>("POST", "/instances", {
        durableObjectId: this.#durableObjectId,
        name,
        env,
        entrypoint: options?.entrypoint,
        enableInternet: options?.enableInternet ?? true,
      }),
    );
    const run: Run = { instance, ...newExit() };
    this.#run = run;
    instance.then(
      (started) => this.#watch(run, started),
      (error) => this.#end(run, error),
    );
  }

  monitor(): Promise<void> {
    if (!this.#run) return Promise.reject(new Error("monitor() cannot be called on a container that is not running."));
    return this.#run.exited;
  }

  async destroy(_error?: unknown): Promise<void> {
    const run = this.#run;
    if (!run) return;
    const instance = await run.instance.catch(() => undefined);
    if (instance) await this.#call("DELETE", `/instances/${instance.id}`).catch((error) => console.error("destroy failed", error));
    await run.exited.catch(() => {});
  }

  signal(signo: number): void {
    const run = this.#run;
    if (!run) return;
    run.instance
      .then((instance) => this.#call("POST", `/instances/${instance.id}/signal`, { signal: signo }))
      .catch((error) => console.error(`signal ${signo} failed`, error));
  }

  getTcpPort(port: number): Fetcher {
    const fetcher: Pick<Fetcher, "fetch"> = {
      fetch: async (input, init) => {
        const run = this.#run;
        if (!run) throw new Error(`the container is not running; cannot connect to port ${port}`);
        const published = (await run.instance).ports[String(port)];
        if (published === undefined) throw new Error(`the container is not listening on port ${port} (not published)`);
        return forwardToPort(`http://127.0.0.1:${published}`, port, new Request(input, init));
      },
    };
    return fetcher as Fetcher;
  }

  async setInactivityTimeout(_durationMs: number | bigint): Promise<void> {}

  // The instance is a local process or container whose requests nothing can catch: what would be intercepted is
  // remembered, the instance is pointed at the Worker's outbound route for it (#instanceEnv), and the route's
  // requests come back through outbound(). HTTPS interception is not emulated.
  async interceptOutboundHttp(addr: string, binding: Fetcher): Promise<void> {
    this.#outboundByHost.set(addr, binding);
  }
  async interceptAllOutboundHttp(binding: Fetcher): Promise<void> {
    this.#outboundForAll = binding;
  }
  async interceptOutboundHttps(_addr: string, _binding: Fetcher): Promise<void> {}

  /** A request the instance sent through the outbound route, answered as Cloudflare would answer it from the container. */
  outbound(request: Request): Promise<Response> {
    const host = new URL(request.url).hostname;
    const fetcher = this.#outboundByHost.get(host) ?? this.#outboundForAll;
    if (!fetcher) return Promise.resolve(new Response(`Nothing intercepts ${host} for this container.`, { status: 502 }));
    return fetcher.fetch(request);
  }

  /** The environment the instance starts with: URLs to intercepted hosts go to the outbound route. */
  #instanceEnv(env: Record<string, string>): Promise<Record<string, string>> {
    if (this.#workerUrl === undefined) return Promise.resolve(env);
    const intercepted = (host: string) => this.#outboundForAll !== undefined || this.#outboundByHost.has(host);
    return throughOutboundRoute(env, intercepted, this.#workerUrl, this.#token, this.#durableObjectId);
  }

  /** Waits for the instance's exit (long polls), then settles the run as workerd's monitor() would. */
  async #watch(run: Run, instance: Instance): Promise<void> {
    while (this.#run === run) {
      let answer: { exited: boolean; exitCode?: number };
      try {
        answer = await this.#call("GET", `/instances/${instance.id}/exit?wait=${EXIT_POLL_SECONDS}`);
      } catch (error) {
        if (error instanceof UnknownInstance) {
          this.#end(run, error);
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, RETRY_AFTER_ERROR_MS));
        continue;
      }
      if (answer.exited) {
        const code = answer.exitCode ?? 0;
        // The wording the Container class reads the exit code from (getExitCodeFromError).
        this.#end(run, code === 0 ? undefined : new Error(`Container exited with unexpected exit code: ${code}`));
        return;
      }
    }
  }

  #end(run: Run, error?: unknown): void {
    if (this.#run === run) this.#run = undefined;
    run.exit(error);
  }

  async #call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(this.#runtime + path, {
      method,
      headers: { Authorization: `Bearer ${this.#token}`, ...(body === undefined ? {} : { "Content-Type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.ok) return (await response.json()) as T;
    const text = await response.text();
    let detail = text;
    try {
      detail = (JSON.parse(text) as { detail?: string }).detail ?? text;
    } catch {
      // not problem details: keep the text
    }
    if (response.status === 404) throw new UnknownInstance(`the local container runtime does not know this instance: ${detail}`);
    throw new Error(detail || `the local container runtime answered ${response.status}`);
  }
}
