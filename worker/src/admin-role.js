// What makes a token an admin's, shared by the Worker (src/auth.ts) and `npm run token -- <user> --admin`
// (scripts/token.mjs). Plain JavaScript so that the Node script can import it without a build step.

/** The claim read by default; AUTH_ADMIN_CLAIM names another. */
export const DEFAULT_ADMIN_CLAIM = "role";

/** The value that claim must have, or contain when it is an array. */
export const ADMIN_ROLE = "admin";
