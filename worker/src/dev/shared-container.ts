import { type ContainerApi, type Exit, forwardToPort, newExit } from "./stand-in";

/** Signals after which a real container's process is gone (SIGINT, SIGKILL, SIGTERM). */
const STOPPING_SIGNALS = new Set([2, 9, 15]);

/**
 * The `ctx.container` of `--upload-service shared` (docs/local-modes.md): every user's Durable Object
 * forwards to the one upload service the AppHost runs at `origin` (CONTAINER_ORIGIN), e.g. to debug it
 * with a debugger attached. It keeps the container API's semantics (start, monitor, signal, destroy) so
 * the Container class runs its real code path, but starting and stopping it changes nothing on the server.
 */
export class SharedContainer implements ContainerApi {
  readonly #origin: string;
  #run: Exit | undefined;

  constructor(origin: string) {
    this.#origin = new URL(origin).origin;
  }

  get running(): boolean {
    return this.#run !== undefined;
  }

  start(_options?: ContainerStartupOptions): void {
    if (this.#run) throw new Error("start() cannot be called on a container that is already running.");
    this.#run = newExit();
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
      fetch: async (input, init) => {
        if (!this.#run) throw new Error(`the container is not running; cannot connect to port ${port}`);
        return forwardToPort(this.#origin, port, new Request(input, init));
      },
    };
    return fetcher as Fetcher;
  }

  // No process with network access of its own: nothing to configure.
  async setInactivityTimeout(_durationMs: number | bigint): Promise<void> {}
  async interceptOutboundHttp(_addr: string, _binding: Fetcher): Promise<void> {}
  async interceptAllOutboundHttp(_binding: Fetcher): Promise<void> {}
  async interceptOutboundHttps(_addr: string, _binding: Fetcher): Promise<void> {}

  #stop(error?: unknown): void {
    const run = this.#run;
    this.#run = undefined;
    run?.exit(error);
  }
}
