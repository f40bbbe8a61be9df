// Prints a signed user token (HS256 JWT) for local requests:
//   npm run token -- <userId> [--ttl 24h] [--admin]
//   curl -H "Authorization: Bearer $(npm run -s token -- alice)" http://localhost:8787/files
// --admin adds `role: "admin"`, the claim the admin API (/admin/containers) asks for.
// The secret is $AUTH_SECRET, else the AppHost's local default (Parameters:auth-secret).
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { SignJWT } from "jose";
import { ADMIN_ROLE, DEFAULT_ADMIN_CLAIM } from "../src/admin-role.js";
import { isValidUserId, USER_ID_RULE } from "../src/user-id.js";

const USAGE = "usage: npm run token -- <userId> [--ttl 24h] [--admin]";
const APPSETTINGS = new URL("../../AppHost/appsettings.json", import.meta.url);

function fail(message) {
  console.error(`token: ${message}`);
  process.exit(1);
}

async function localSecret() {
  let settings;
  try {
    settings = JSON.parse(await readFile(APPSETTINGS, "utf8"));
  } catch (error) {
    fail(`AUTH_SECRET is unset and ${APPSETTINGS.pathname} could not be read (${error.message})`);
  }
  const secret = settings?.Parameters?.["auth-secret"];
  if (typeof secret !== "string" || secret === "") {
    fail(`AUTH_SECRET is unset and ${APPSETTINGS.pathname} has no Parameters:auth-secret`);
  }
  return secret;
}

let parsed;
try {
  parsed = parseArgs({ allowPositionals: true, options: { ttl: { type: "string", default: "24h" }, admin: { type: "boolean", default: false } } });
} catch (error) {
  fail(`${error.message}\n${USAGE}`);
}
const { positionals, values } = parsed;
if (positionals.length !== 1) fail(USAGE);
const [userId] = positionals;
if (!isValidUserId(userId)) fail(`invalid user id '${userId}': ${USER_ID_RULE}`);

const secret = process.env.AUTH_SECRET || (await localSecret());
let token;
try {
  token = await new SignJWT(values.admin ? { [DEFAULT_ADMIN_CLAIM]: ADMIN_ROLE } : {})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(values.ttl)
    .sign(new TextEncoder().encode(secret));
} catch (error) {
  fail(`invalid --ttl '${values.ttl}' (e.g. 30m, 24h, 7d): ${error.message}`);
}
console.log(token);
