/**
 * The Worker as the AppHost runs it (`wrangler dev src/dev/index.ts`, scripts/dev.sh): the production
 * module (../index.ts) unchanged, with a `ctx.container` for the Durable Object where
 * `--enable-containers=false` leaves none. `wrangler deploy` bundles wrangler.toml's `main`
 * (src/index.ts), so nothing in this folder ships.
 */
import { instrumentDO } from "@microlabs/otel-cf-workers";
import { telemetryConfig } from "../telemetry";
import { UserAppContainer as ProductionUserAppContainer } from "../user-app-container";
import { RuntimeContainer } from "./runtime-container";
import { SharedContainer } from "./shared-container";

import production from "../index";
import { interceptedRequest, serveOutboundRoute } from "./outbound-route";

export { ContainerProxy } from "@cloudflare/containers";
export { ContainerDirectory } from "../index";

/** The production Worker, plus the outbound route of the local instances (./outbound-route.ts). */
export default {
  async fetch(request, env, ctx) {
    return (await serveOutboundRoute(request, env as Env & DevVars)) ?? production.fetch!(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;

/** Values the AppHost passes in local modes only (scripts/dev.sh writes them to the env file). */
export interface DevVars {
  /** The local container runtime (per-user instances) and the key its requests need. */
  CONTAINER_RUNTIME_URL?: string;
  CONTAINER_RUNTIME_TOKEN?: string;
  /** `--upload-service shared`: the one upload service every user's Durable Object forwards to. */
  CONTAINER_ORIGIN?: string;
  /** Overrides the class's `sleepAfter` (`--Containers:SleepAfter=30s` on the AppHost). */
  CONTAINERS_SLEEP_AFTER?: string;
  /** The Worker as the local instances reach it: where their outbound route is (./outbound-route.ts). */
  LOCAL_WORKER_URL?: string;
}

class DevUserAppContainer extends ProductionUserAppContainer {
  // The Container class keeps outbound handlers by class name: this class answers with the production ones.
  static {
    this.outboundHandlers = ProductionUserAppContainer.outboundHandlers ?? {};
    this.outboundByHost = ProductionUserAppContainer.outboundByHost ?? {};
  }

  constructor(ctx: DurableObjectState, env: Env) {
    const vars = env as Env & DevVars;
    // Before super(): the Container constructor reads ctx.container.
    const container = ctx.container === undefined ? localContainer(ctx, vars) : undefined;
    if (container) {
      // A Proxy around ctx is rejected by the runtime, hence defineProperty.
      Object.defineProperty(ctx, "container", { value: container, configurable: true, enumerable: true });
    }
    super(ctx, env);
    if (container instanceof RuntimeContainer) container.name = () => this.userId;
    if (vars.CONTAINERS_SLEEP_AFTER) this.sleepAfter = vars.CONTAINERS_SLEEP_AFTER;
  }

  /** The outbound route's requests (checked by the Worker) go to the handlers registered for the instance. */
  override async fetch(request: Request): Promise<Response> {
    const intercepted = interceptedRequest(request);
    if (!intercepted) return super.fetch(request);
    if (this.ctx.container instanceof RuntimeContainer) return this.ctx.container.outbound(intercepted);
    return new Response("This Durable Object has no local instance.", { status: 404 });
  }
}

function localContainer(ctx: DurableObjectState, env: DevVars): RuntimeContainer | SharedContainer | undefined {
  if (env.CONTAINER_RUNTIME_URL && env.CONTAINER_RUNTIME_TOKEN) {
    return new RuntimeContainer(env.CONTAINER_RUNTIME_URL, env.CONTAINER_RUNTIME_TOKEN, ctx.id.toString(), env.LOCAL_WORKER_URL);
  }
  return env.CONTAINER_ORIGIN ? new SharedContainer(env.CONTAINER_ORIGIN) : undefined;
}

/** The per-user Durable Object with its local container, traced like the production one. */
export const UserAppContainer = instrumentDO(DevUserAppContainer, telemetryConfig);
export type UserAppContainer = DevUserAppContainer;
