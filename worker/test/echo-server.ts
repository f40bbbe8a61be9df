// vitest globalSetup (runs in Node, not in workerd): a real HTTP server standing in for the upload
// service. It answers every request with what arrived (method, path+query, headers, body length and
// SHA-256), hashing the body as it streams in, and provides its origin to the tests.
import { createHash } from "node:crypto";
import { createServer } from "node:http";
import type { TestProject } from "vitest/node";
import { listenLocally } from "./local-server";

declare module "vitest" {
  export interface ProvidedContext {
    echoOrigin: string;
    closedOrigin: string;
  }
}

export interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  bodyLength: number;
  bodySha256: string;
}

export default async function setup(project: TestProject) {
  const server = createServer((request, response) => {
    const hash = createHash("sha256");
    let bodyLength = 0;
    request.on("data", (chunk: Buffer) => {
      hash.update(chunk);
      bodyLength += chunk.length;
    });
    request.on("end", () => {
      const echo: Echo = {
        method: request.method ?? "",
        url: request.url ?? "",
        headers: request.headers,
        bodyLength,
        bodySha256: hash.digest("hex"),
      };
      // `X-Echo-Status: N` asks for a bare error, the way an HTTP server rejects a request before the
      // app sees it: that status, no body, no Content-Type (plus a Content-Range to show headers survive).
      const bareStatus = Number(request.headers["x-echo-status"]);
      if (bareStatus) {
        response.writeHead(bareStatus, { "Content-Range": "bytes */10", "X-Echo": "1" });
        response.end();
        return;
      }
      response.writeHead(200, { "Content-Type": "application/json", "X-Echo": "1" });
      response.end(JSON.stringify(echo));
    });
  });
  const { origin, stop } = await listenLocally(server);
  project.provide("echoOrigin", origin);

  // An origin where nothing listens: bind a port, then free it.
  const closed = await listenLocally(createServer());
  await closed.stop();
  project.provide("closedOrigin", closed.origin);

  return stop;
}
