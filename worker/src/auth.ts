import { createRemoteJWKSet, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import { ADMIN_ROLE, DEFAULT_ADMIN_CLAIM } from "./admin-role.js";
import type { RuntimeVars } from "./env";
import { isValidUserId, USER_ID_RULE } from "./user-id.js";

/** The settings authenticate() reads: the Worker's `env` itself. */
export type AuthSettings = Pick<RuntimeVars, "AUTH_SECRET" | "AUTH_JWKS_URL" | "AUTH_ISSUER" | "AUTH_AUDIENCE" | "AUTH_ADMIN_CLAIM">;

/**
 * 401: the client's token is missing or not acceptable. 500: the Worker is misconfigured.
 * 503: the key set at AUTH_JWKS_URL could not be loaded (the token may well be fine).
 */
export type AuthResult = { ok: true; userId: string; admin: boolean } | { ok: false; status: 401 | 500 | 503; detail: string };

/** Accepted lateness of `exp` and earliness of `nbf`/`iat`, for clocks that differ slightly. */
export const CLOCK_TOLERANCE_S = 30;

/**
 * Each algorithm is bound to one source of keys, so that no token can pick the key type it is checked
 * with: HS256 only with AUTH_SECRET, the asymmetric ones only with public keys from AUTH_JWKS_URL.
 */
const SECRET_ALGORITHMS = ["HS256"];
const JWKS_ALGORITHMS = ["RS256", "ES256"];

/** JWT claims with a meaning of their own (RFC 7519 4.1), which cannot carry the admin role. */
const REGISTERED_CLAIMS = new Set(["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]);

const BEARER = /^Bearer[ ]+([^ ]+)[ ]*$/i;
const encoder = new TextEncoder();

/** Key sets by URL, kept for the isolate's life; jose caches the keys and refetches on an unknown `kid`. */
const keySets = new Map<string, JWTVerifyGetKey>();

/** Thrown by the key resolver when the key set, not the token, is at fault. */
class KeySetUnavailable extends Error {}

/**
 * Verifies `Authorization: Bearer <JWT>` and returns the user id from `sub`: HS256 with AUTH_SECRET
 * and/or RS256/ES256 with a key from AUTH_JWKS_URL, `iss`/`aud` checked when AUTH_ISSUER/AUTH_AUDIENCE
 * are set; `exp` is required. `admin` says whether the token carries the admin role (`role: "admin"`, or
 * the claim AUTH_ADMIN_CLAIM names). Never throws; every failure is a result.
 */
export async function authenticate(request: Request, settings: AuthSettings): Promise<AuthResult> {
  const secret = settings.AUTH_SECRET || undefined;
  const jwksUrl = settings.AUTH_JWKS_URL || undefined;
  if (secret === undefined && jwksUrl === undefined) {
    return { ok: false, status: 500, detail: "Authentication is not configured (neither AUTH_SECRET nor AUTH_JWKS_URL is set)." };
  }
  let keySet: JWTVerifyGetKey | undefined;
  if (jwksUrl !== undefined) {
    keySet = keySetAt(jwksUrl);
    if (keySet === undefined) return { ok: false, status: 500, detail: "Authentication is misconfigured (AUTH_JWKS_URL is not an http(s) URL)." };
  }

  const adminClaim = settings.AUTH_ADMIN_CLAIM || DEFAULT_ADMIN_CLAIM;
  if (REGISTERED_CLAIMS.has(adminClaim)) {
    // e.g. `sub` would make the user whose id is "admin" an admin.
    return { ok: false, status: 500, detail: `Authentication is misconfigured (AUTH_ADMIN_CLAIM cannot be the registered claim '${adminClaim}').` };
  }

  const header = request.headers.get("Authorization");
  if (header === null) return unauthorized("Missing Authorization header; send 'Authorization: Bearer <token>'.");
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) return unauthorized("Authorization header is not of the form 'Bearer <token>'.");

  const algorithms = [...(secret !== undefined ? SECRET_ALGORITHMS : []), ...(keySet !== undefined ? JWKS_ALGORITHMS : [])];
  const secretKey = secret !== undefined ? encoder.encode(secret) : undefined;
  // jose checks `alg` against `algorithms` before it asks for a key, so here `alg` is one of them.
  const keyFor: JWTVerifyGetKey = async (protectedHeader, jws) => {
    if (SECRET_ALGORITHMS.includes(protectedHeader.alg)) return secretKey!;
    try {
      return await keySet!(protectedHeader, jws);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
      throw new KeySetUnavailable("key set unavailable", { cause: error });
    }
  };

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keyFor, {
      algorithms,
      issuer: settings.AUTH_ISSUER || undefined,
      audience: settings.AUTH_AUDIENCE || undefined,
      clockTolerance: CLOCK_TOLERANCE_S,
      requiredClaims: ["exp"], // a token that never expires is not accepted
    }));
  } catch (error) {
    if (error instanceof KeySetUnavailable) {
      console.error(`authentication: the key set at AUTH_JWKS_URL could not be loaded: ${String(error.cause)}`);
      return { ok: false, status: 503, detail: "The keys to verify the token with could not be loaded; try again later." };
    }
    return unauthorized(describe(error, algorithms));
  }
  const { sub, iat } = payload;
  // jose checks `iat` only against a maximum age; a token from the future is not valid yet either.
  if (typeof iat === "number" && iat > Date.now() / 1000 + CLOCK_TOLERANCE_S) return unauthorized("Token 'iat' is in the future.");
  if (sub === undefined) return unauthorized("Token has no 'sub' claim.");
  if (!isValidUserId(sub)) return unauthorized(`Token 'sub' is not a valid user id (${USER_ID_RULE}).`);
  const role = payload[adminClaim];
  const admin = role === ADMIN_ROLE || (Array.isArray(role) && role.includes(ADMIN_ROLE));
  return { ok: true, userId: sub, admin };
}

function keySetAt(url: string): JWTVerifyGetKey | undefined {
  let keySet = keySets.get(url);
  if (keySet === undefined) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return undefined;
    }
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined;
    keySet = createRemoteJWKSet(parsed);
    keySets.set(url, keySet);
  }
  return keySet;
}

function unauthorized(detail: string): AuthResult {
  return { ok: false, status: 401, detail };
}

function describe(error: unknown, algorithms: string[]): string {
  if (error instanceof errors.JWTExpired) return "Token has expired.";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "Token signature is invalid.";
  if (error instanceof errors.JOSEAlgNotAllowed) return `Token algorithm is not allowed; accepted: ${algorithms.join(", ")}.`;
  if (error instanceof errors.JWKSNoMatchingKey) return "No key in the key set matches the token ('kid'/'alg').";
  if (error instanceof errors.JWKSMultipleMatchingKeys) return "Several keys in the key set match the token; it needs a 'kid'.";
  if (error instanceof errors.JWTClaimValidationFailed) return `Token rejected: ${error.message}.`;
  return "Token is malformed.";
}
