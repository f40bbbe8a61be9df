import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, inject, it } from "vitest";
import { SharedContainer } from "../src/dev/shared-container";
import type { UserAppContainer } from "../src/user-app-container";
import type { Echo } from "./echo-server";
import { BASE, bearer, tokenFor } from "./support";

const echoOrigin = inject("echoOrigin");
const closedOrigin = inject("closedOrigin");

describe("SharedContainer (the ctx.container stand-in of the shared mode)", () => {
  it("is not running until started, and cannot be started twice", () => {
    const container = new SharedContainer(echoOrigin);
    expect(container.running).toBe(false);
    container.start({ enableInternet: false });
    expect(container.running).toBe(true);
    expect(() => container.start()).toThrow(/already running/);
  });

  it("refuses monitor() and port fetches while not running", async () => {
    const container = new SharedContainer(echoOrigin);
    await expect(container.monitor()).rejects.toThrow(/not running/);
    await expect(container.getTcpPort(8000).fetch("http://ping/")).rejects.toThrow(/not running/);
  });

  it("resolves monitor() when a stopping signal ends it, and can start again", async () => {
    const container = new SharedContainer(echoOrigin);
    container.start();
    const exited = container.monitor();
    container.signal(1); // SIGHUP does not stop a process
    expect(container.running).toBe(true);
    container.signal(15);
    expect(container.running).toBe(false);
    await expect(exited).resolves.toBeUndefined();
    container.start();
    expect(container.running).toBe(true);
  });

  it("rejects monitor() with the reason given to destroy()", async () => {
    const container = new SharedContainer(echoOrigin);
    container.start();
    const exited = container.monitor();
    await container.destroy(new Error("boom"));
    expect(container.running).toBe(false);
    await expect(exited).rejects.toThrow("boom");
  });

  it("forwards method, path, query, headers and body to the origin", async () => {
    const container = new SharedContainer(echoOrigin);
    container.start();
    const response = await container.getTcpPort(8000).fetch("http://10.0.0.1:8000//files/a?b=c%20d", {
      method: "POST",
      headers: { "X-Custom": "yes", "Content-Type": "application/octet-stream" },
      body: "hello",
    });
    const echo = (await response.json()) as Echo;
    expect(echo).toMatchObject({ method: "POST", url: "//files/a?b=c%20d", bodyLength: 5 });
    expect(echo.headers["x-custom"]).toBe("yes");
    expect(echo.headers["content-type"]).toBe("application/octet-stream");
  });

  it("reports a closed origin as 'not listening', the error the library retries on", async () => {
    const container = new SharedContainer(closedOrigin);
    container.start();
    await expect(container.getTcpPort(8000).fetch("http://ping/")).rejects.toThrow(/not listening on port 8000/);
  });
});

describe("UserAppContainer in the shared mode", () => {
  it("gets the stand-in, starts it through the Container class on first request, and knows its user", async () => {
    const userId = "stand-in-user";
    const stub = env.USER_CONTAINERS.getByName(userId);
    const before = await runInDurableObject(stub, (instance: UserAppContainer, state) => ({
      hasContainer: state.container !== undefined,
      running: state.container?.running,
    }));
    expect(before).toEqual({ hasContainer: true, running: false });

    const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(await tokenFor(userId)) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echo).headers["x-user-id"]).toBe(userId);

    const after = await runInDurableObject(stub, async (instance: UserAppContainer, state) => ({
      running: state.container?.running,
      state: (await instance.getState()).status,
      userId: instance.userId,
      idName: state.id.name ?? null,
    }));
    expect(after.running).toBe(true);
    expect(after.state).toBe("healthy");
    expect(after.userId).toBe(userId);
    console.log(`ctx.id.name inside the Durable Object: ${JSON.stringify(after.idName)}`);
  });
});
