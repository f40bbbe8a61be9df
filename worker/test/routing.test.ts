import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BASE, expectProblem } from "./support";

describe("routing", () => {
  it("answers /health without a token", async () => {
    const response = await SELF.fetch(`${BASE}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it.each(["/", "/filesystem", "/health/x", "/uploadsx", "/UPLOADS", "/FILES"])("answers %s with a 404 problem", async (path) => {
    const problem = await expectProblem(await SELF.fetch(`${BASE}${path}`), 404);
    expect(problem.detail).toContain(path);
  });

  it("asks for a token on /files before anything else", async () => {
    const response = await SELF.fetch(`${BASE}/files/a.txt`, { method: "PUT", body: "x" });
    await expectProblem(response, 401);
    expect(response.headers.get("WWW-Authenticate")).toMatch(/^Bearer\b/);
  });
});
