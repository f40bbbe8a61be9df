import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

import { TEST_AUTH_SECRET, TEST_INTERNAL_SECRET } from "./test/support.ts";

export default defineConfig({
  plugins: [
    cloudflareTest(({ inject }) => ({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // What scripts/dev.sh passes with --var in local modes: the DO gets the stand-in container.
        bindings: { AUTH_SECRET: TEST_AUTH_SECRET, INTERNAL_SECRET: TEST_INTERNAL_SECRET, CONTAINER_ORIGIN: inject("echoOrigin") },
      },
    })),
  ],
  test: {
    globalSetup: ["./test/echo-server.ts"],
    testTimeout: 30_000,
  },
});
