import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

import { TEST_AUTH_SECRET, TEST_INTERNAL_SECRET, TEST_JWKS_PATH } from "./test/support.ts";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      // The development entry point, as `wrangler dev` runs it locally (scripts/dev.sh).
      main: "./src/dev/index.ts",
      miniflare: {
        // What scripts/dev.sh passes with --var in the shared mode: the DO gets the stand-in container,
        // tokens are checked with the secret and with the key set, spans go to the local collector.
        bindings: {
          AUTH_SECRET: TEST_AUTH_SECRET,
          INTERNAL_SECRET: TEST_INTERNAL_SECRET,
          AUTH_JWKS_URL: `${inject("jwksOrigin")}${TEST_JWKS_PATH}`,
          CONTAINER_ORIGIN: inject("echoOrigin"),
          OTEL_EXPORTER_OTLP_ENDPOINT: inject("otlpOrigin"),
        },
      },
    })),
  ],
  test: {
    globalSetup: ["./test/echo-server.ts", "./test/jwks-server.ts", "./test/otlp-collector.ts"],
    testTimeout: 30_000,
  },
});
