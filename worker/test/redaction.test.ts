import { SELF } from "cloudflare:test";
import { afterEach, describe, expect, inject, it, vi } from "vitest";
import type { ReceivedExport } from "./otlp-collector";
import { BASE, bearer, now, signedWithKeySet, tokenFor } from "./support";

const otlpOrigin = inject("otlpOrigin");

/** Export requests the collector has received, polled until `done` holds or the deadline passes. */
async function exportsUntil(done: (bodies: string) => boolean, deadlineMs = 15_000): Promise<string> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const received = (await (await fetch(`${otlpOrigin}/received`)).json()) as ReceivedExport[];
    const bodies = received.map((r) => r.body).join("\n");
    if (done(bodies)) return bodies;
    if (Date.now() > deadline) throw new Error("the expected spans were not exported in time");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("credentials stay out of telemetry and logs", () => {
  it("exports spans and writes logs without any Authorization or X-Internal-Signature value", async () => {
    const marker = crypto.randomUUID();
    const userId = `redaction-${marker}`;
    const tokens = {
      hs256: await tokenFor(userId),
      es256: await signedWithKeySet("ES256", { sub: userId, iat: now(), exp: now() + 600 }),
      forged: await tokenFor(userId, { secret: "not-the-secret" }),
    };
    const internalSignature = `signature-${marker}`;
    const consoleMethods = ["log", "info", "warn", "error", "debug"] as const;
    const spies = consoleMethods.map((method) => vi.spyOn(console, method));

    const statuses: Record<string, number> = {};
    for (const [name, token] of Object.entries(tokens)) {
      const response = await SELF.fetch(`${BASE}/files/${marker}-${name}?probe=1`, {
        headers: { ...bearer(token), "X-Internal-Signature": internalSignature, "X-Internal-Timestamp": "1700000000" },
      });
      await response.arrayBuffer();
      statuses[name] = response.status;
    }
    expect(statuses).toEqual({ hs256: 200, es256: 200, forged: 401 });

    // Wait for the Worker spans of all three requests and the Durable Object span of the user.
    const bodies = await exportsUntil((b) => ["hs256", "es256", "forged"].every((n) => b.includes(`${marker}-${n}`)) && b.includes(`Durable Object Fetch ${userId}`));
    const logged = spies.flatMap((spy) => spy.mock.calls.map((args) => args.map(String).join(" "))).join("\n");
    expect(logged).toContain(userId); // the logs of this request are what is being checked

    // Every part of each token that is secret-bearing (claims and signature), and the signature header.
    const secrets = [...Object.values(tokens).flatMap((token) => token.split(".").slice(1)), internalSignature];
    for (const secret of secrets) {
      expect(bodies).not.toContain(secret);
      expect(logged).not.toContain(secret);
    }
    expect(bodies).not.toMatch(/authorization|x-internal-signature/i);
  });
});
