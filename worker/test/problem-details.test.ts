import { describe, expect, it } from "vitest";
import { asProblemDetails } from "../src/user-app-container";
import { expectProblem } from "./support";

// What the Container class answers on its own failures: `new Response(string, { status })`, which gets this type.
const library = (status: number, text: string) => new Response(text, { status });

describe("the Durable Object's error responses are problem details", () => {
  it("a failed start (the library's plain-text 500) is 502 with the library's words as detail", async () => {
    const response = await asProblemDetails(library(500, "Failed to start container: boom"), "GET");
    const problem = await expectProblem(response, 502);
    expect(problem.detail).toBe("Failed to start container: boom");
    expect(response.headers.get("Retry-After")).toBeNull();
  });

  it.each([
    [503, "There is no Container instance available at this time."],
    [500, "Failed to start container: Maximum number of running container instances exceeded, try again later"],
  ])("no instance (the library's %i) is 503 with Retry-After", async (status, text) => {
    const response = await asProblemDetails(library(status, text), "PUT");
    const problem = await expectProblem(response, 503);
    expect(problem.detail).toBe(text);
    expect(Number(response.headers.get("Retry-After"))).toBeGreaterThan(0);
  });

  it("the library's rate limit stays 429", async () => {
    await expectProblem(await asProblemDetails(library(429, "Too many requests"), "GET"), 429);
  });

  it("an empty error from the container's HTTP server gets a body, keeping its headers", async () => {
    const bare = new Response(null, { status: 416, headers: { "Content-Range": "bytes */10", "Content-Length": "0" } });
    const response = await asProblemDetails(bare, "GET");
    await expectProblem(response, 416);
    expect(response.headers.get("Content-Range")).toBe("bytes */10");
    expect(response.headers.get("Content-Length")).toBeNull();
  });

  it("for HEAD the problem's headers come without its body", async () => {
    const response = await asProblemDetails(new Response(null, { status: 404 }), "HEAD");
    expect(response.status).toBe(404);
    expect(response.headers.get("Content-Type")).toBe("application/problem+json");
    expect(response.body).toBeNull();
  });

  it.each([
    ["the service's own problem details", new Response('{"status":404}', { status: 404, headers: { "Content-Type": "application/problem+json" } })],
    ["a plain-text error with a status the library never uses", library(418, "teapot")],
    ["a success", library(200, "ok")],
  ])("%s pass through unchanged", async (_, original) => {
    expect(await asProblemDetails(original, "GET")).toBe(original);
  });
});
