import { importJWK, type JWTPayload, SignJWT } from "jose";
import { inject } from "vitest";

/** The AUTH_SECRET the Worker gets in tests (vitest.config.ts). */
export const TEST_AUTH_SECRET = "test-secret-for-vitest-only";

/** The INTERNAL_SECRET the Durable Object signs with in tests (vitest.config.ts). */
export const TEST_INTERNAL_SECRET = "internal-secret-for-vitest-only-0123456789";

/** Where on the JWKS server (jwks-server.ts) the Worker's AUTH_JWKS_URL points in tests. */
export const TEST_JWKS_PATH = "/jwks/worker.json";

export const BASE = "https://files.example.test";

export async function tokenFor(
  sub: string | undefined,
  {
    secret = TEST_AUTH_SECRET,
    expiresIn = "1h" as string | number,
    notBefore,
    claims = {},
  }: { secret?: string; expiresIn?: string | number; notBefore?: number; claims?: JWTPayload } = {},
): Promise<string> {
  const jwt = new SignJWT(sub === undefined ? claims : { ...claims, sub }).setProtectedHeader({ alg: "HS256" }).setIssuedAt().setExpirationTime(expiresIn);
  if (notBefore !== undefined) jwt.setNotBefore(notBefore);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** A JWT with exactly these claims, signed RS256 or ES256 with the key pair the JWKS server serves. */
export async function signedWithKeySet(alg: "RS256" | "ES256", claims: JWTPayload, header: { kid?: string } = {}): Promise<string> {
  const jwk = inject("signingKeys")[alg === "RS256" ? "rs256" : "es256"];
  return new SignJWT(claims).setProtectedHeader({ alg, kid: jwk.kid, ...header }).sign(await importJWK(jwk, alg));
}

/** Seconds since the epoch, as JWT claims count time. */
export function now(): number {
  return Math.floor(Date.now() / 1000);
}

export function bearer(token: string): HeadersInit {
  return { Authorization: `Bearer ${token}` };
}

export async function expectProblem(response: Response, status: number): Promise<{ type: string; title: string; status: number; detail: string }> {
  if (response.status !== status) throw new Error(`expected ${status}, got ${response.status}: ${await response.text()}`);
  if (response.headers.get("Content-Type") !== "application/problem+json") {
    throw new Error(`expected application/problem+json, got ${response.headers.get("Content-Type")}`);
  }
  const body = (await response.json()) as { type: string; title: string; status: number; detail: string };
  if (body.status !== status || typeof body.title !== "string" || typeof body.detail !== "string" || typeof body.type !== "string") {
    throw new Error(`not a problem document: ${JSON.stringify(body)}`);
  }
  return body;
}
