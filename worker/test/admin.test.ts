import { env, runInDurableObject, SELF } from "cloudflare:test";
import type { JWTPayload } from "jose";
import { describe, expect, it } from "vitest";
import type { ContainerView as AdminView } from "../src/admin";
import { type AuthSettings, authenticate } from "../src/auth";
import { DIRECTORY_NAME } from "../src/container-directory";
import type { UserAppContainer } from "../src/user-app-container";
import { BASE, bearer, expectProblem, TEST_AUTH_SECRET, tokenFor } from "./support";

/** An answer of the admin API (a stop's or destroy's carries a detail). */
type ContainerView = AdminView & { detail?: string };

const adminToken = () => tokenFor("operator", { claims: { role: "admin" } });

async function admin(path: string, init: RequestInit = {}): Promise<Response> {
  return SELF.fetch(`${BASE}/admin/containers${path}`, { ...init, headers: { ...bearer(await adminToken()), ...init.headers } });
}

async function json<T>(response: Response, status: number): Promise<T> {
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

/** A user's first request: the Durable Object starts its (stand-in) container, which onStart reports. */
async function wake(user: string): Promise<void> {
  const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(await tokenFor(user)) });
  expect(response.status).toBe(200);
  await response.text();
}

async function show(user: string): Promise<ContainerView> {
  return json<ContainerView>(await admin(`/${user}`), 200);
}

/** Polls the user's entry until `done` holds: the Durable Object reports starts and stops in the background. */
async function waitFor(user: string, done: (view: ContainerView) => boolean): Promise<ContainerView> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const response = await admin(`/${user}`);
    const view = response.status === 404 ? undefined : await json<ContainerView>(response, 200);
    if (response.status === 404) await response.text();
    if (view !== undefined && done(view)) return view;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${user}; last: ${JSON.stringify(view)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const isHealthy = (view: ContainerView) => view.status === "healthy";

/**
 * Cancels the Durable Object's pending alarm. The pool runs alarms outside otel-cf-workers' configuration
 * ("Config is undefined" from the instrumented storage, which resets the object), so these tests keep
 * alarms from firing; what follows an exit through the alarm (onStop after destroy, after a sleep) is
 * tested on the real AppHost (tests/Integration.Tests/Containers/AdminApiTests.cs).
 */
async function quiesce(user: string): Promise<void> {
  await runInDurableObject(env.USER_CONTAINERS.getByName(user), (_: UserAppContainer, state) => state.storage.deleteAlarm());
}

function running(user: string): Promise<boolean> {
  return runInDurableObject(env.USER_CONTAINERS.getByName(user), (_: UserAppContainer, state) => state.container?.running ?? false);
}

describe("admin API: who may call it", () => {
  it("answers a request without a token with 401", async () => {
    const response = await SELF.fetch(`${BASE}/admin/containers`);
    await expectProblem(response, 401);
    expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer\b/);
  });

  it("answers a forged admin token with 401", async () => {
    const forged = await tokenFor("operator", { claims: { role: "admin" }, secret: "not-the-worker-secret" });
    await expectProblem(await SELF.fetch(`${BASE}/admin/containers`, { headers: bearer(forged) }), 401);
  });

  it.each([{}, { role: "user" }, { role: ["user", "reader"] }, { role: "Admin" }, { roles: "admin" }])(
    "answers a token with claims %j (no admin role) with 403",
    async (claims) => {
      const token = await tokenFor("someone", { claims });
      for (const [path, method] of [["", "GET"], ["/someone", "GET"], ["/someone/stop", "POST"], ["/someone", "DELETE"]] as const) {
        const problem = await expectProblem(await SELF.fetch(`${BASE}/admin/containers${path}`, { method, headers: bearer(token) }), 403);
        expect(problem.detail).toMatch(/admin/);
      }
    },
  );

  it.each(["/files/../admin/containers", "/files/%2e%2e/admin/containers/x", "/uploads/.%2E/admin/containers/x/stop"])(
    "routes %s, which normalises to the admin API, to the role check (403 for a user)",
    async (path) => {
      const response = await SELF.fetch(`${BASE}${path}`, { method: path.endsWith("/stop") ? "POST" : "GET", headers: bearer(await tokenFor("someone")) });
      await expectProblem(response, 403);
    },
  );

  it.each([{ role: "admin" }, { role: ["user", "admin"] }])("answers a token with claims %j with 200", async (claims) => {
    const token = await tokenFor("operator", { claims });
    const response = await SELF.fetch(`${BASE}/admin/containers`, { headers: bearer(token) });
    expect(response.status).toBe(200);
    expect(response.headers.get("Content-Type")).toMatch(/^application\/json/);
  });
});

describe("admin API: containers", () => {
  it("lists a user once their container has started, healthy, with when it started", async () => {
    const user = "admin-listed";
    const before = Date.now();
    await wake(user);
    await quiesce(user);
    await waitFor(user, isHealthy);
    const { containers } = await json<{ containers: ContainerView[] }>(await admin("?limit=1000"), 200);
    const entry = containers.find((c) => c.user === user);
    expect(entry).toMatchObject({ user, status: "healthy", exitCode: null, lastStop: null });
    expect(Date.parse(entry!.lastStart!)).toBeGreaterThanOrEqual(before - 1000);
    expect(entry!.lastChange).toBe(entry!.lastStart);
  });

  it("shows one container with its Durable Object's live state", async () => {
    const user = "admin-shown";
    await wake(user);
    await quiesce(user);
    const view = await waitFor(user, isHealthy);
    expect(view).toMatchObject({ user, status: "healthy", exitCode: null });
  });

  it("stops a running container (202); the directory records the stop with its exit code; stopping again is a no-op", async () => {
    const user = "admin-stopped";
    await wake(user);
    await quiesce(user);
    const first = (await waitFor(user, isHealthy)).lastStart!;

    const stopped = await admin(`/${user}/stop`, { method: "POST" });
    const answer = await json<ContainerView>(stopped, 202);
    expect(answer).toMatchObject({ user, status: "stopping" });
    expect(answer.detail).toMatch(/SIGTERM/);
    expect(stopped.headers.get("Location")).toBe(`/admin/containers/${user}`);

    // The stand-in exits at once, so the stop's own bookkeeping runs onStop, which reports to the directory.
    expect(await running(user)).toBe(false);
    const after = await waitFor(user, (view) => view.lastStop !== null);
    expect(after).toMatchObject({ exitCode: 0 });
    expect(after.status).toMatch(/^stopped/);
    const { containers } = await json<{ containers: ContainerView[] }>(await admin("?limit=1000"), 200);
    expect(containers.find((c) => c.user === user)).toMatchObject({ status: "stopped", exitCode: 0, lastStop: after.lastStop });

    const again = await json<ContainerView>(await admin(`/${user}/stop`, { method: "POST" }), 200);
    expect(again.status).toBe("stopped");
    expect(again.detail).toMatch(/not running; there was nothing to stop/);

    // The user's next request starts it again, and the directory says so.
    await new Promise((resolve) => setTimeout(resolve, 5));
    await wake(user);
    await quiesce(user);
    const woken = await waitFor(user, (view) => isHealthy(view) && view.lastStart !== first);
    expect(Date.parse(woken.lastStart!)).toBeGreaterThan(Date.parse(first));
    expect(Date.parse(woken.lastStop!)).toBeGreaterThanOrEqual(Date.parse(after.lastStop!));
  });

  it("destroys a running container (202) through its Durable Object", async () => {
    const user = "admin-destroyed";
    await wake(user);
    await quiesce(user);
    await waitFor(user, isHealthy);
    const answer = await json<ContainerView>(await admin(`/${user}`, { method: "DELETE" }), 202);
    expect(answer.detail).toMatch(/SIGKILL/);
    expect(await running(user)).toBe(false);
    expect((await show(user)).status).toMatch(/^stopped/);
  });

  it("never starts a container by listing, showing, stopping or destroying it", async () => {
    const user = "admin-asleep";
    await wake(user);
    await quiesce(user);
    await waitFor(user, isHealthy);
    await json(await admin(`/${user}/stop`, { method: "POST" }), 202);
    expect(await running(user)).toBe(false);

    await json(await admin("?limit=1000"), 200);
    await show(user);
    expect((await json<ContainerView>(await admin(`/${user}/stop`, { method: "POST" }), 200)).detail).toMatch(/nothing to stop/);
    expect((await json<ContainerView>(await admin(`/${user}`, { method: "DELETE" }), 200)).detail).toMatch(/nothing to destroy/);
    expect(await running(user)).toBe(false);
    expect((await show(user)).status).toMatch(/^stopped/);
  });

  it("pages through every container in user id order", async () => {
    const seeded = ["page-c", "page-a", "page-e", "page-b", "page-d"];
    const directory = env.CONTAINER_DIRECTORY.getByName(DIRECTORY_NAME);
    for (const user of seeded) await directory.started(user, Date.now());

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `?limit=2${cursor === null ? "" : `&cursor=${cursor}`}`;
      const page: { containers: ContainerView[]; cursor: string | null } = await json(await admin(query), 200);
      expect(page.containers.length).toBeLessThanOrEqual(2);
      if (page.cursor !== null) expect(page.containers.at(-1)!.user).toBe(page.cursor);
      seen.push(...page.containers.map((c) => c.user));
      cursor = page.cursor;
      pages++;
    } while (cursor !== null && pages < 1000);

    expect(cursor).toBeNull();
    expect(seen).toEqual([...seen].sort());
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen).toEqual(expect.arrayContaining(seeded));
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(seen.length / 2));
  });

  it.each(["?limit=0", "?limit=1001", "?limit=abc", "?limit=1.5", "?limit=-1", "?cursor=a%20b"])("answers %s with 400", async (query) => {
    await expectProblem(await admin(query), 400);
  });

  it("answers an unknown user with 404 on every route", async () => {
    for (const [path, method] of [["/nobody-here", "GET"], ["/nobody-here/stop", "POST"], ["/nobody-here", "DELETE"]] as const) {
      const problem = await expectProblem(await admin(path, { method }), 404);
      expect(problem.detail).toContain("nobody-here");
    }
  });

  it("holds user ids to the same rule as everywhere else", async () => {
    const problem = await expectProblem(await admin(`/${"x".repeat(129)}`), 400);
    expect(problem.detail).toMatch(/not a valid user id/);
    await expectProblem(await admin("/a%20b"), 400);
  });

  it("answers other paths with 404 and other methods with 405 and Allow", async () => {
    await expectProblem(await admin("/someone/restart", { method: "POST" }), 404);
    await expectProblem(await admin("/someone/stop/now", { method: "POST" }), 404);
    const list = await admin("", { method: "POST" });
    await expectProblem(list, 405);
    expect(list.headers.get("Allow")).toBe("GET");
    const stop = await admin("/someone/stop");
    await expectProblem(stop, 405);
    expect(stop.headers.get("Allow")).toBe("POST");
    const one = await admin("/someone", { method: "PUT", body: "x" });
    await expectProblem(one, 405);
    expect(one.headers.get("Allow")).toBe("GET, DELETE");
  });
});

describe("admin role in the token", () => {
  const settings: AuthSettings = { AUTH_SECRET: TEST_AUTH_SECRET };
  const check = async (claims: JWTPayload, with_: AuthSettings = settings) =>
    authenticate(new Request(`${BASE}/admin/containers`, { headers: bearer(await tokenFor("operator", { claims })) }), with_);

  it("is read from `role` by default: the value admin, or an array containing it", async () => {
    expect(await check({ role: "admin" })).toEqual({ ok: true, userId: "operator", admin: true });
    expect(await check({ role: ["reader", "admin"] })).toMatchObject({ ok: true, admin: true });
    for (const role of ["ADMIN", "admins", "", 1, true, { admin: true }, ["Admin"]]) {
      expect(await check({ role })).toMatchObject({ ok: true, admin: false });
    }
  });

  it("is read from the claim AUTH_ADMIN_CLAIM names, and then only from it", async () => {
    const namespaced: AuthSettings = { ...settings, AUTH_ADMIN_CLAIM: "https://example.test/roles" };
    expect(await check({ "https://example.test/roles": ["admin"] }, namespaced)).toMatchObject({ ok: true, admin: true });
    expect(await check({ role: "admin" }, namespaced)).toMatchObject({ ok: true, admin: false });
  });

  it("cannot be a registered claim: AUTH_ADMIN_CLAIM=sub would make the user named admin an admin", async () => {
    for (const claim of ["sub", "iss", "aud", "jti"]) {
      expect(await check({}, { ...settings, AUTH_ADMIN_CLAIM: claim })).toMatchObject({ ok: false, status: 500 });
    }
  });
});
