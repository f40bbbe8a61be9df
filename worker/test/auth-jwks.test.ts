import { SELF } from "cloudflare:test";
import { base64url, exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import { describe, expect, inject, it } from "vitest";
import { type AuthResult, type AuthSettings, authenticate } from "../src/auth";
import type { Echo } from "./echo-server";
import { BASE, bearer, expectProblem, now, signedWithKeySet, TEST_AUTH_SECRET, tokenFor } from "./support";

const jwksOrigin = inject("jwksOrigin");
const closedOrigin = inject("closedOrigin");
const encoder = new TextEncoder();

const valid = (sub = "alice"): JWTPayload => ({ sub, iat: now(), exp: now() + 600 });

/** authenticate() itself, for settings other than the Worker's own (vitest.config.ts). */
function check(token: string, settings: AuthSettings): Promise<AuthResult> {
  return authenticate(new Request(`${BASE}/files`, { headers: bearer(token) }), settings);
}

async function rejected(token: string): Promise<string> {
  const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(token) });
  const problem = await expectProblem(response, 401);
  expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer\b/);
  return problem.detail;
}

function unsignedToken(header: object, payload: object, signature = ""): string {
  const part = (value: object) => base64url.encode(JSON.stringify(value));
  return `${part(header)}.${part(payload)}.${signature}`;
}

describe("tokens verified with the key set at AUTH_JWKS_URL (a real local JWKS server)", () => {
  it.each(["RS256", "ES256"] as const)("accepts %s: the request reaches the container as that user", async (alg) => {
    const userId = `keyset-${alg}`;
    const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(await signedWithKeySet(alg, valid(userId))) });
    expect(response.status).toBe(200);
    const echo = (await response.json()) as Echo;
    expect(echo.headers["x-user-id"]).toBe(userId);
    expect(echo.headers.authorization).toBeUndefined();
  });

  it("still accepts HS256 tokens signed with AUTH_SECRET alongside the key set", async () => {
    const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(await tokenFor("hs-user")) });
    expect(response.status).toBe(200);
    expect(((await response.json()) as Echo).headers["x-user-id"]).toBe("hs-user");
  });

  it("rejects a kid that is not in the key set", async () => {
    expect(await rejected(await signedWithKeySet("RS256", valid(), { kid: "rs-unknown" }))).toMatch(/no key .* matches/i);
  });

  it("rejects a token signed with a key outside the set under a kid of the set", async () => {
    const { privateKey } = await generateKeyPair("ES256");
    const token = await new SignJWT(valid()).setProtectedHeader({ alg: "ES256", kid: "es-1" }).sign(privateKey);
    expect(await rejected(token)).toMatch(/signature/i);
  });

  it("rejects alg none, with or without a kid of the set", async () => {
    expect(await rejected(unsignedToken({ alg: "none" }, valid()))).toMatch(/algorithm/i);
    expect(await rejected(unsignedToken({ alg: "none", kid: "rs-1" }, valid()))).toMatch(/algorithm/i);
  });

  it("rejects HS256 tokens whose HMAC key is the RSA public key (PEM or JWK): HS256 is checked with AUTH_SECRET only", async () => {
    const rsaPublic = inject("signingKeys").rs256;
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicJwk } = rsaPublic;
    for (const keyBytes of [inject("rsaPublicPem"), JSON.stringify(publicJwk)]) {
      const token = await new SignJWT(valid()).setProtectedHeader({ alg: "HS256", kid: "rs-1" }).sign(encoder.encode(keyBytes));
      expect(await rejected(token)).toMatch(/signature/i);
    }
  });

  it("rejects an RS256-labelled token that carries an HMAC", async () => {
    const hs = await tokenFor("alice");
    const [, payload, signature] = hs.split(".");
    const token = `${base64url.encode(JSON.stringify({ alg: "RS256", kid: "rs-1" }))}.${payload}.${signature}`;
    expect(await rejected(token)).toMatch(/signature|malformed/i);
  });

  it("rejects algorithms other than HS256, RS256, ES256", async () => {
    const { privateKey } = await generateKeyPair("PS256");
    const token = await new SignJWT(valid()).setProtectedHeader({ alg: "PS256", kid: "rs-1" }).sign(privateKey);
    expect(await rejected(token)).toMatch(/algorithm is not allowed; accepted: HS256, RS256, ES256/);
  });

  it("rejects an expired token", async () => {
    expect(await rejected(await signedWithKeySet("ES256", { sub: "alice", iat: now() - 7200, exp: now() - 3600 }))).toMatch(/expired/i);
  });

  it("rejects nbf and iat in the future beyond the tolerance, and accepts them within it", async () => {
    expect(await rejected(await signedWithKeySet("RS256", { ...valid(), nbf: now() + 120 }))).toMatch(/nbf/);
    expect(await rejected(await signedWithKeySet("RS256", { ...valid(), iat: now() + 120 }))).toMatch(/iat/);
    const slightlyAhead = await signedWithKeySet("RS256", { ...valid("skewed"), nbf: now() + 10, iat: now() + 10 });
    expect((await SELF.fetch(`${BASE}/files`, { headers: bearer(slightlyAhead) })).status).toBe(200);
  });

  it.each([[undefined], [""], [".."], ["a/b"], [42]])("rejects sub %j", async (sub) => {
    expect(await rejected(await signedWithKeySet("ES256", { iat: now(), exp: now() + 600, sub: sub as string }))).toMatch(/sub/);
  });

  it("fetches the key set once per isolate, not per request", async () => {
    const url = `${jwksOrigin}/jwks/cache-probe.json`;
    const fetches = async () => Number(await (await fetch(`${jwksOrigin}/fetches/cache-probe`)).text());
    for (const alg of ["RS256", "ES256", "RS256", "ES256", "RS256"] as const) {
      expect(await check(await signedWithKeySet(alg, valid()), { AUTH_JWKS_URL: url })).toEqual({ ok: true, userId: "alice", admin: false });
    }
    expect(await fetches()).toBe(1);
  });
});

describe("which keys are accepted depends on what is configured", () => {
  it("with only AUTH_JWKS_URL, HS256 is refused even with the right secret", async () => {
    const result = await check(await tokenFor("alice"), { AUTH_JWKS_URL: `${jwksOrigin}/jwks/only.json` });
    expect(result).toEqual({ ok: false, status: 401, detail: "Token algorithm is not allowed; accepted: RS256, ES256." });
  });

  it("with only AUTH_JWKS_URL, RS256 and ES256 are accepted", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      expect(await check(await signedWithKeySet(alg, valid()), { AUTH_JWKS_URL: `${jwksOrigin}/jwks/only.json` })).toEqual({ ok: true, userId: "alice", admin: false });
    }
  });

  it("with only AUTH_SECRET, RS256 and ES256 are refused", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      const result = await check(await signedWithKeySet(alg, valid()), { AUTH_SECRET: TEST_AUTH_SECRET });
      expect(result).toEqual({ ok: false, status: 401, detail: "Token algorithm is not allowed; accepted: HS256." });
    }
  });

  it("with neither, answers 500 (not configured), whatever the token", async () => {
    for (const settings of [{}, { AUTH_SECRET: "", AUTH_JWKS_URL: "" }]) {
      const result = await check(await tokenFor("alice"), settings);
      expect(result).toMatchObject({ ok: false, status: 500, detail: expect.stringMatching(/not configured/) });
    }
  });

  it.each(["not a url", "ftp://keys.example.test/jwks.json"])("answers 500 for AUTH_JWKS_URL %j", async (url) => {
    const result = await check(await signedWithKeySet("RS256", valid()), { AUTH_JWKS_URL: url });
    expect(result).toMatchObject({ ok: false, status: 500, detail: expect.stringMatching(/AUTH_JWKS_URL/) });
  });

  it("answers 503, not 401, when the key set cannot be fetched or is not a key set", async () => {
    for (const url of [`${closedOrigin}/jwks.json`, `${jwksOrigin}/broken.json`, `${jwksOrigin}/missing.json`]) {
      const result = await check(await signedWithKeySet("RS256", valid()), { AUTH_JWKS_URL: url });
      expect(result).toMatchObject({ ok: false, status: 503 });
    }
  });

  it("HS256 tokens are still checked with AUTH_SECRET when the key set is unreachable", async () => {
    const result = await check(await tokenFor("alice"), { AUTH_SECRET: TEST_AUTH_SECRET, AUTH_JWKS_URL: `${closedOrigin}/jwks.json` });
    expect(result).toEqual({ ok: true, userId: "alice", admin: false });
  });
});

describe("AUTH_ISSUER and AUTH_AUDIENCE", () => {
  const settings: AuthSettings = {
    AUTH_SECRET: TEST_AUTH_SECRET,
    AUTH_JWKS_URL: `${jwksOrigin}/jwks/claims.json`,
    AUTH_ISSUER: "https://issuer.example.test/",
    AUTH_AUDIENCE: "upload-service",
  };
  const hs256 = (claims: JWTPayload) => new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(encoder.encode(TEST_AUTH_SECRET));
  const signers = {
    HS256: hs256,
    RS256: (claims: JWTPayload) => signedWithKeySet("RS256", claims),
    ES256: (claims: JWTPayload) => signedWithKeySet("ES256", claims),
  };

  describe.each(Object.entries(signers))("%s", (_alg, sign) => {
    it("accepts the configured iss and aud (aud also as a list)", async () => {
      for (const aud of ["upload-service", ["other", "upload-service"]]) {
        expect(await check(await sign({ ...valid(), iss: settings.AUTH_ISSUER, aud }), settings)).toEqual({ ok: true, userId: "alice", admin: false });
      }
    });

    it.each([
      ["a wrong iss", { iss: "https://evil.example.test/", aud: "upload-service" }, /iss/],
      ["no iss", { aud: "upload-service" }, /iss/],
      ["a wrong aud", { iss: "https://issuer.example.test/", aud: "another-service" }, /aud/],
      ["no aud", { iss: "https://issuer.example.test/" }, /aud/],
    ])("rejects %s", async (_case, claims, detail) => {
      const result = await check(await sign({ ...valid(), ...claims }), settings);
      expect(result).toMatchObject({ ok: false, status: 401, detail: expect.stringMatching(detail) });
    });
  });

  it("are not checked when unset (the Worker's own settings): a token with any iss and aud passes", async () => {
    const response = await SELF.fetch(`${BASE}/files`, {
      headers: bearer(await signedWithKeySet("ES256", { ...valid("any-iss"), iss: "https://anyone.example.test/", aud: "anything" })),
    });
    expect(response.status).toBe(200);
  });
});

describe("the public key of an unrelated JWKS", () => {
  it("cannot be smuggled in through the token header (jwk, jku)", async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const token = await new SignJWT(valid())
      .setProtectedHeader({ alg: "RS256", jwk: await exportJWK(publicKey), jku: `${jwksOrigin}/jwks/attacker.json` })
      .sign(privateKey);
    expect(await rejected(token)).toMatch(/no key .* matches|signature/i);
  });
});
