import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { Echo } from "./echo-server";
import { SignJWT } from "jose";
import { BASE, bearer, expectProblem, TEST_AUTH_SECRET, tokenFor } from "./support";

const base64url = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");

async function rejected(headers: HeadersInit): Promise<string> {
  const response = await SELF.fetch(`${BASE}/files`, { headers });
  const problem = await expectProblem(response, 401);
  expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer\b/);
  return problem.detail;
}

describe("authentication", () => {
  it("rejects a request without a token", async () => {
    expect(await rejected({})).toMatch(/missing authorization/i);
  });

  it("rejects a non-Bearer scheme", async () => {
    expect(await rejected({ Authorization: `Basic ${btoa("a:b")}` })).toMatch(/Bearer/);
  });

  it("rejects garbage", async () => {
    expect(await rejected(bearer("not.a.jwt"))).toMatch(/malformed/i);
  });

  it("rejects an expired token", async () => {
    const token = await tokenFor("alice", { expiresIn: Math.floor(Date.now() / 1000) - 60 });
    expect(await rejected(bearer(token))).toMatch(/expired/i);
  });

  it("rejects a token that never expires (no exp)", async () => {
    const token = await new SignJWT({ sub: "alice" }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().sign(new TextEncoder().encode(TEST_AUTH_SECRET));
    expect(await rejected(bearer(token))).toMatch(/"exp" claim/);
  });

  it("rejects a token that is not valid yet", async () => {
    const token = await tokenFor("alice", { notBefore: Math.floor(Date.now() / 1000) + 3600 });
    expect(await rejected(bearer(token))).toMatch(/nbf/);
  });

  it("rejects a token signed with another secret", async () => {
    const token = await tokenFor("alice", { secret: "some-other-secret" });
    expect(await rejected(bearer(token))).toMatch(/signature/i);
  });

  it("rejects alg none", async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = `${base64url({ alg: "none", typ: "JWT" })}.${base64url({ sub: "alice", iat: now, exp: now + 600 })}.`;
    expect(await rejected(bearer(token))).toMatch(/algorithm|malformed/i);
  });

  it("rejects a token without sub", async () => {
    expect(await rejected(bearer(await tokenFor(undefined)))).toMatch(/sub/);
  });

  it.each([".", "..", "a/b", "a b", "ü", "x".repeat(129), ""])("rejects sub %j", async (sub) => {
    expect(await rejected(bearer(await tokenFor(sub)))).toMatch(/sub/);
  });

  it("accepts a good token: the request reaches the user's container as that user, without credentials", async () => {
    const userId = `A-z_0.9-${"x".repeat(120)}`;
    const response = await SELF.fetch(`${BASE}/files`, {
      headers: { ...bearer(await tokenFor(userId)), "X-User-Id": "mallory" },
    });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.headers["x-user-id"]).toBe(userId);
    expect(echo.headers.authorization).toBeUndefined();
  });
});
