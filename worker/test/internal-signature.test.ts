import { SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import type { Echo } from "./echo-server";
import { internalSignature, SIGNATURE_HEADER, TIMESTAMP_HEADER } from "../src/internal-signature";
import { BASE, bearer, tokenFor, TEST_INTERNAL_SECRET } from "./support";

let auth: HeadersInit;
beforeAll(async () => {
  auth = bearer(await tokenFor("signing-user"));
});

/** Recomputes the signature from what actually arrived at the (echo) service. */
async function expectValidSignature(echo: Echo): Promise<void> {
  const timestamp = Number(echo.headers[TIMESTAMP_HEADER.toLowerCase()]);
  expect(Math.abs(Date.now() / 1000 - timestamp)).toBeLessThan(60);
  const expected = await internalSignature(TEST_INTERNAL_SECRET, {
    timestamp,
    method: echo.method,
    methodOverride: (echo.headers["x-http-method-override"] as string | undefined) ?? null,
    target: echo.url,
    userId: String(echo.headers["x-user-id"]),
  });
  expect(echo.headers[SIGNATURE_HEADER.toLowerCase()]).toBe(expected);
}

describe("the Durable Object signs what it sends to the upload service", () => {
  it("matches the vector the service's tests pin", async () => {
    // Computed independently (Python's hmac); also in tests/UploadService.Tests/InternalSignatureTests.cs.
    const signature = await internalSignature("0123456789abcdef0123456789abcdef", {
      timestamp: 1700000000,
      method: "POST",
      methodOverride: "PATCH",
      target: "/uploads/abc%20d?x=1",
      userId: "alice",
    });
    expect(signature).toBe("v1=c1450572f5c8c647e564c52bbbd62c6a535ae4b2dac34b1a35ad92f50cd37496");
  });

  it.each(["GET", "PUT", "POST", "DELETE", "PATCH"])("signs %s with the method, target and user as they arrive", async (method) => {
    const path = "/files/dir/na%20me%C3%A9.txt?prefix=a%2Fb&x=1";
    const response = await SELF.fetch(`${BASE}${path}`, { method, headers: auth, body: ["GET"].includes(method) ? undefined : "abc" });
    const echo = (await response.json()) as Echo;
    expect(echo.url).toBe(path);
    expect(echo.headers["x-user-id"]).toBe("signing-user");
    if (method === "PATCH") expect([echo.method, echo.headers["x-http-method-override"]]).toEqual(["POST", "PATCH"]);
    await expectValidSignature(echo);
  });

  it("replaces a signature the client brought", async () => {
    const response = await SELF.fetch(`${BASE}/files/x.txt`, {
      headers: { ...auth, [TIMESTAMP_HEADER]: "1", [SIGNATURE_HEADER]: "v1=forged" },
    });
    const echo = (await response.json()) as Echo;
    expect(echo.headers[SIGNATURE_HEADER.toLowerCase()]).not.toBe("v1=forged");
    await expectValidSignature(echo);
  });

  it("signs a client's own method override, which the service will act on", async () => {
    const response = await SELF.fetch(`${BASE}/uploads/abc`, {
      method: "POST",
      headers: { ...auth, "X-HTTP-Method-Override": "DELETE" },
    });
    const echo = (await response.json()) as Echo;
    expect(echo.headers["x-http-method-override"]).toBe("DELETE");
    await expectValidSignature(echo);
  });
});
