// vitest globalSetup (runs in Node, not in workerd): a real HTTP server standing in for the OTLP/HTTP
// collector (the Aspire dashboard locally). The Worker exports its spans here (OTEL_EXPORTER_OTLP_ENDPOINT
// in vitest.config.ts); GET /received returns every export request so far: its headers and raw JSON body.
import { createServer } from "node:http";
import type { TestProject } from "vitest/node";
import { listenLocally } from "./local-server";

declare module "vitest" {
  export interface ProvidedContext {
    otlpOrigin: string;
  }
}

export interface ReceivedExport {
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export default async function setup(project: TestProject) {
  const received: ReceivedExport[] = [];
  const server = createServer((request, response) => {
    if (request.method === "POST" && request.url === "/v1/traces") {
      const chunks: Buffer[] = [];
      request.on("data", (chunk: Buffer) => chunks.push(chunk));
      request.on("end", () => {
        received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8") });
        response.writeHead(200, { "Content-Type": "application/json" });
        response.end("{}");
      });
    } else if (request.method === "GET" && request.url === "/received") {
      response.writeHead(200, { "Content-Type": "application/json" });
      response.end(JSON.stringify(received));
    } else {
      response.writeHead(404);
      response.end();
    }
  });
  const { origin, stop } = await listenLocally(server);
  project.provide("otlpOrigin", origin);

  return stop;
}
