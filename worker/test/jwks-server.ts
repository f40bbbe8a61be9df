// vitest globalSetup (runs in Node, not in workerd): a real HTTP server standing in for an identity
// provider's `jwks_uri`. It serves the public halves of an RS256 and an ES256 key pair generated here,
// at /jwks/<name>.json for any name (so a test can use a URL that no other test has warmed), counts
// the fetches of each such path (GET /fetches/<name>), and answers /broken.json with something that
// is not a key set. The private keys go to the tests, which sign with them.
import { createServer } from "node:http";
import { exportJWK, exportSPKI, generateKeyPair, type JWK } from "jose";
import type { TestProject } from "vitest/node";
import { listenLocally } from "./local-server";

declare module "vitest" {
  export interface ProvidedContext {
    jwksOrigin: string;
    /** Private JWKs (with `kid` and `alg`) whose public halves the server serves. */
    signingKeys: { rs256: JWK; es256: JWK };
    /** The RSA public key as PEM (SPKI), for algorithm-confusion attempts. */
    rsaPublicPem: string;
  }
}

export default async function setup(project: TestProject) {
  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const keySet = {
    keys: [
      { ...(await exportJWK(rsa.publicKey)), kid: "rs-1", alg: "RS256", use: "sig" },
      { ...(await exportJWK(ec.publicKey)), kid: "es-1", alg: "ES256", use: "sig" },
    ],
  };
  const fetches = new Map<string, number>();

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    const keySetName = /^\/jwks\/([\w-]+)\.json$/.exec(path)?.[1];
    const countedName = /^\/fetches\/([\w-]+)$/.exec(path)?.[1];
    if (keySetName !== undefined) {
      fetches.set(keySetName, (fetches.get(keySetName) ?? 0) + 1);
      response.writeHead(200, { "Content-Type": "application/jwk-set+json" });
      response.end(JSON.stringify(keySet));
    } else if (countedName !== undefined) {
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify(fetches.get(countedName) ?? 0));
    } else if (path === "/broken.json") {
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end('{"keys": "not a list"}');
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  const { origin, stop } = await listenLocally(server);
  project.provide("jwksOrigin", origin);
  project.provide("signingKeys", {
    rs256: { ...(await exportJWK(rsa.privateKey)), kid: "rs-1", alg: "RS256" },
    es256: { ...(await exportJWK(ec.privateKey)), kid: "es-1", alg: "ES256" },
  });
  project.provide("rsaPublicPem", await exportSPKI(rsa.publicKey));

  return stop;
}
