import { errors, jwtVerify } from "jose";
import { isValidUserId, USER_ID_RULE } from "./user-id.js";

export type AuthResult = { ok: true; userId: string } | { ok: false; detail: string };

const BEARER = /^Bearer[ ]+([^ ]+)[ ]*$/i;
const encoder = new TextEncoder();

/** Verifies `Authorization: Bearer <JWT>` (HS256 only) and returns the user id from `sub`. */
export async function authenticate(request: Request, secret: string): Promise<AuthResult> {
  const header = request.headers.get("Authorization");
  if (header === null) return { ok: false, detail: "Missing Authorization header; send 'Authorization: Bearer <token>'." };
  const token = BEARER.exec(header)?.[1];
  if (token === undefined) return { ok: false, detail: "Authorization header is not of the form 'Bearer <token>'." };

  let sub: unknown;
  try {
    ({ payload: { sub } } = await jwtVerify(token, encoder.encode(secret), { algorithms: ["HS256"] }));
  } catch (error) {
    return { ok: false, detail: describe(error) };
  }
  if (sub === undefined) return { ok: false, detail: "Token has no 'sub' claim." };
  if (!isValidUserId(sub)) return { ok: false, detail: `Token 'sub' is not a valid user id (${USER_ID_RULE}).` };
  return { ok: true, userId: sub };
}

function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "Token has expired.";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "Token signature is invalid.";
  if (error instanceof errors.JOSEAlgNotAllowed) return "Token algorithm is not allowed; only HS256 is accepted.";
  if (error instanceof errors.JWTClaimValidationFailed) return `Token rejected: ${error.message}.`;
  return "Token is malformed.";
}
