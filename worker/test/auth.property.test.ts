// Property-based tests (fast-check) of authenticate() and the user-id rule, run in workerd against the
// real JWKS server (jwks-server.ts). Each property is checked on a bounded number of generated cases.
import fc from "fast-check";
import { base64url, type CryptoKey, importJWK, type JWTPayload, SignJWT } from "jose";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { type AuthResult, type AuthSettings, authenticate, CLOCK_TOLERANCE_S } from "../src/auth";
import { isValidUserId } from "../src/user-id.js";
import { BASE, now, TEST_AUTH_SECRET } from "./support";

const ISSUER = "https://issuer.example.test/";
const AUDIENCE = "upload-service";
const settings: AuthSettings = { AUTH_SECRET: TEST_AUTH_SECRET, AUTH_JWKS_URL: `${inject("jwksOrigin")}/jwks/property.json` };
const strict: AuthSettings = { ...settings, AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: AUDIENCE };

/** The user-id rule as documented (USER_ID_RULE), spelled out independently of user-id.js's regex. */
const USER_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
function satisfiesUserIdRule(value: unknown): boolean {
  return (
    typeof value === "string" &&
    value.length >= 1 &&
    value.length <= 128 &&
    [...value].every((c) => USER_ID_ALPHABET.includes(c)) &&
    value !== "." &&
    value !== ".."
  );
}

/** authenticate() with this Authorization header; a value that Headers refuses is no case at all. */
async function authenticateWith(authorization: string, with_ = settings): Promise<AuthResult> {
  let headers: Headers;
  try {
    headers = new Headers({ Authorization: authorization });
  } catch {
    fc.pre(false);
    throw new Error("unreachable");
  }
  return authenticate(new Request(`${BASE}/files`, { headers }), with_);
}

function expectRejected(result: AuthResult): void {
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.status).toBe(401);
    expect(typeof result.detail).toBe("string");
  }
}

type Alg = "HS256" | "RS256" | "ES256";
let keys: Record<Alg, { key: CryptoKey | Uint8Array; kid?: string }>;
beforeAll(async () => {
  const { rs256, es256 } = inject("signingKeys");
  keys = {
    HS256: { key: new TextEncoder().encode(TEST_AUTH_SECRET) },
    RS256: { key: (await importJWK(rs256, "RS256")) as CryptoKey, kid: rs256.kid },
    ES256: { key: (await importJWK(es256, "ES256")) as CryptoKey, kid: es256.kid },
  };
});

function sign(alg: Alg, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg, kid: keys[alg].kid }).sign(keys[alg].key);
}

const alg = fc.constantFrom<Alg>("HS256", "RS256", "ES256");
const userIdLike = fc.string({ unit: fc.constantFrom(...USER_ID_ALPHABET), minLength: 1, maxLength: 130 });
const sub = fc.oneof(
  userIdLike,
  fc.constantFrom(".", "..", "", "a/b", "a b", "ü", "x".repeat(128), "x".repeat(129)),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.integer(),
  fc.constant(undefined),
);
const base64urlSegment = fc.uint8Array({ maxLength: 300 }).map((bytes) => base64url.encode(bytes));
const jsonSegment = (value: fc.Arbitrary<unknown>) => value.map((v) => base64url.encode(JSON.stringify(v)));
const garbageHeader = fc.record(
  {
    alg: fc.oneof(fc.constantFrom("none", "None", "HS256", "RS256", "ES256", "HS512", "PS256", "EdDSA", ""), fc.string(), fc.integer()),
    kid: fc.oneof(fc.constantFrom("rs-1", "es-1"), fc.string()),
    typ: fc.constantFrom("JWT", "at+jwt"),
    crit: fc.array(fc.string(), { maxLength: 2 }),
    b64: fc.boolean(),
  },
  { requiredKeys: [] },
);
const claims = fc.record(
  {
    sub,
    iat: fc.oneof(fc.integer({ min: now() - 100_000, max: now() + 100_000 }), fc.string()),
    exp: fc.oneof(fc.integer({ min: now() - 100_000, max: now() + 100_000 }), fc.jsonValue()),
    nbf: fc.integer({ min: now() - 100_000, max: now() + 100_000 }),
    iss: fc.oneof(fc.constant(ISSUER), fc.string()),
    aud: fc.oneof(fc.constant(AUDIENCE), fc.array(fc.string(), { maxLength: 3 })),
  },
  { requiredKeys: [] },
);

describe("authenticate() on generated input", () => {
  it("never throws and never accepts an arbitrary Authorization header", async () => {
    const headerValue = fc.oneof(
      fc.string({ unit: fc.integer({ min: 0x09, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 200 }),
      fc.string({ maxLength: 200 }).map((s) => `Bearer ${s}`),
    );
    await fc.assert(
      fc.asyncProperty(headerValue, async (value) => expectRejected(await authenticateWith(value))),
      { numRuns: 300 },
    );
  });

  it("never throws and never accepts JWT-shaped garbage (random header, claims and signature bytes)", async () => {
    const segment = (json: fc.Arbitrary<unknown>) => fc.oneof({ weight: 4, arbitrary: jsonSegment(json) }, base64urlSegment, fc.string({ maxLength: 40 }));
    const token = fc
      .tuple(segment(garbageHeader), segment(claims), fc.oneof(base64urlSegment, fc.constant("")), fc.constantFrom(".", ".."))
      .map(([header, payload, signature, separator]) => [header, payload, signature].join(separator));
    await fc.assert(
      fc.asyncProperty(token, fc.constantFrom(settings, strict), async (jwt, with_) => expectRejected(await authenticateWith(`Bearer ${jwt}`, with_))),
      { numRuns: 300 },
    );
  });

  it("never accepts a correctly signed token with one character of it changed", async () => {
    const validClaims = userIdLike.filter(satisfiesUserIdRule).map((id): JWTPayload => ({ sub: id, iat: now(), exp: now() + 3600 }));
    await fc.assert(
      fc.asyncProperty(alg, validClaims, fc.nat(), fc.nat({ max: 2 }), fc.nat(), async (algorithm, payload, position, part, replacement) => {
        const token = await sign(algorithm, payload);
        expect(await authenticateWith(`Bearer ${token}`)).toEqual({ ok: true, userId: payload.sub, admin: false });
        const parts = token.split(".");
        const target = parts[part]!;
        // Not the last character of the signature: some of its bits are padding, so other characters can decode to the same bytes.
        const index = position % (part === 2 ? target.length - 1 : target.length);
        const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".replace(target[index]!, "");
        parts[part] = target.slice(0, index) + alphabet[replacement % alphabet.length] + target.slice(index + 1);
        expectRejected(await authenticateWith(`Bearer ${parts.join(".")}`));
      }),
      { numRuns: 200 },
    );
  });

  it("accepts a correctly signed token exactly when its claims are acceptable, and then its userId satisfies the user-id rule", async () => {
    // Times well clear of the tolerance edges, so that the clock moving during a run cannot change the outcome.
    const past = fc.integer({ min: -100_000, max: -(CLOCK_TOLERANCE_S + 30) });
    const nearNow = fc.integer({ min: -CLOCK_TOLERANCE_S + 10, max: CLOCK_TOLERANCE_S - 10 });
    const future = fc.integer({ min: CLOCK_TOLERANCE_S + 30, max: 100_000 });
    const when = fc.option(fc.oneof(past, nearNow, future), { nil: undefined });
    const iss = fc.option(fc.constantFrom(ISSUER, "https://other.example.test/"), { nil: undefined });
    const aud = fc.option(fc.constantFrom<string | string[]>(AUDIENCE, "other", [AUDIENCE, "other"], ["other"], []), { nil: undefined });
    const cases = fc.record({ alg, sub, exp: when, nbf: when, iat: when, iss, aud, checkIssuerAndAudience: fc.boolean() });

    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        const t = now();
        const payload: JWTPayload = { sub: c.sub as string | undefined, iss: c.iss, aud: c.aud };
        if (c.exp !== undefined) payload.exp = t + c.exp;
        if (c.nbf !== undefined) payload.nbf = t + c.nbf;
        if (c.iat !== undefined) payload.iat = t + c.iat;
        const acceptable =
          satisfiesUserIdRule(c.sub) &&
          c.exp !== undefined && c.exp > -CLOCK_TOLERANCE_S &&
          (c.nbf === undefined || c.nbf <= CLOCK_TOLERANCE_S) &&
          (c.iat === undefined || c.iat <= CLOCK_TOLERANCE_S) &&
          (!c.checkIssuerAndAudience ||
            (c.iss === ISSUER && (c.aud === AUDIENCE || (Array.isArray(c.aud) && c.aud.includes(AUDIENCE)))));

        const result = await authenticateWith(`Bearer ${await sign(c.alg, payload)}`, c.checkIssuerAndAudience ? strict : settings);
        if (acceptable) {
          expect(result).toEqual({ ok: true, userId: c.sub, admin: false });
          expect(satisfiesUserIdRule(result.ok && result.userId)).toBe(true);
        } else {
          expectRejected(result);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("the user-id rule (user-id.js)", () => {
  it("matches its documented wording for any value", () => {
    const value = fc.oneof(userIdLike, fc.string({ unit: "grapheme", maxLength: 140 }), fc.constantFrom(".", "..", "...", ""), fc.anything());
    fc.assert(
      fc.property(value, (v) => {
        expect(isValidUserId(v)).toBe(satisfiesUserIdRule(v));
      }),
      { numRuns: 500 },
    );
  });
});
