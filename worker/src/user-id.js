// The rule for user ids, shared by the Worker (src/auth.ts) and `npm run token` (scripts/token.mjs).
// Plain JavaScript so that the Node script can import it without a build step.
// The id becomes a Durable Object name and a folder name in the upload service, hence `.`/`..` are refused.
const USER_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * @param {unknown} value
 * @returns {value is string}
 */
export function isValidUserId(value) {
  return typeof value === "string" && USER_ID.test(value) && value !== "." && value !== "..";
}

export const USER_ID_RULE = "1-128 characters of A-Z a-z 0-9 . _ -, and not '.' or '..'";
