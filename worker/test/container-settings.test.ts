import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { containerSettings } from "../src/user-app-container";

// What a container gets from the Worker's secrets and vars (envVars), by FILE_STORAGE.
const base = { ...env, INTERNAL_SECRET: "internal-secret-for-vitest-only-0123456789", OTEL_EXPORTER_OTLP_HEADERS: "x-otlp-api-key=otlp-secret" };
const r2Keys = { R2_ENDPOINT: "https://s3.example.test", R2_BUCKET: "old", R2_ACCESS_KEY_ID: "key-id", R2_SECRET_ACCESS_KEY: "key-secret" };

describe("containerSettings", () => {
  it("r2 (the default): storage and telemetry through the Durable Object, no key or header of any kind", () => {
    const settings = containerSettings({ ...base, FILE_STORAGE: undefined });
    if ("error" in settings) throw new Error(settings.error);
    expect(settings.storage).toBe("r2");
    expect(settings.envVars).toMatchObject({
      Storage__Provider: "s3",
      Storage__S3__ServiceUrl: "http://storage.internal",
      Storage__S3__Bucket: "files",
      Storage__S3__AccessKeyId: "no-key-the-durable-object-answers",
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://otlp.internal",
    });
    const values = Object.values(settings.envVars).join("\n");
    expect(values).not.toContain("otlp-secret");
    expect(Object.keys(settings.envVars)).not.toContain("OTEL_EXPORTER_OTLP_HEADERS");
  });

  it("s3: the store's settings and keys, as asked for explicitly", () => {
    const settings = containerSettings({ ...base, FILE_STORAGE: "s3", ...r2Keys });
    if ("error" in settings) throw new Error(settings.error);
    expect(settings.envVars).toMatchObject({
      Storage__S3__ServiceUrl: "https://s3.example.test",
      Storage__S3__Bucket: "old",
      Storage__S3__AccessKeyId: "key-id",
      Storage__S3__SecretAccessKey: "key-secret",
    });
  });

  it("disk: no storage settings at all", () => {
    const settings = containerSettings({ ...base, FILE_STORAGE: "disk" });
    if ("error" in settings) throw new Error(settings.error);
    expect(Object.keys(settings.envVars).filter((name) => name.startsWith("Storage__"))).toEqual([]);
  });

  it("says what is wrong: R2 keys left from before the binding, an unknown mode, s3 without keys, no signing key", () => {
    expect(containerSettings({ ...base, FILE_STORAGE: undefined, ...r2Keys })).toEqual({ error: expect.stringContaining("FILE_STORAGE=s3") });
    expect(containerSettings({ ...base, FILE_STORAGE: "R2" })).toEqual({ error: expect.stringContaining("use r2, s3 or disk") });
    expect(containerSettings({ ...base, FILE_STORAGE: "s3" })).toEqual({ error: expect.stringContaining("R2_BUCKET") });
    expect(containerSettings({ ...base, INTERNAL_SECRET: "" })).toEqual({ error: expect.stringContaining("INTERNAL_SECRET") });
  });
});
