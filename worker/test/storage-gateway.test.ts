import { env, runInDurableObject, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, it } from "vitest";
import { STORAGE_BUCKET, STORAGE_HOST, serveStorage, storageOutbound, userStorageKey } from "../src/storage-gateway";
import type { UserAppContainer } from "../src/user-app-container";
import { BASE, bearer, tokenFor } from "./support";

// The outbound handler on the R2 binding of the test runtime (miniflare's R2, as `wrangler dev` runs it), driven
// with the requests the upload service's S3 SDK sends (path-style, as UploadService/Storage/S3/ does).
const MiB = 1024 * 1024;
let alice: string;
let bob: string;

beforeAll(async () => {
  alice = await userStorageKey("alice");
  bob = await userStorageKey("bob");
});

function s3(method: string, path: string, init: { body?: BodyInit; headers?: HeadersInit } = {}): Promise<Response> {
  return serveStorage(new Request(`http://${STORAGE_HOST}/${STORAGE_BUCKET}/${path}`, { method, ...init }), env.FILES, alice);
}

function bytes(length: number, seed: number): Uint8Array {
  const result = new Uint8Array(length);
  for (let i = 0; i < length; i++) result[i] = (i * 31 + seed) & 0xff;
  return result;
}

async function sha256(data: ArrayBuffer | Uint8Array): Promise<string> {
  return [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function xmlValues(body: string, tag: string): string[] {
  return [...body.matchAll(new RegExp(`<${tag}>([^<]*)</${tag}>`, "g"))].map((match) => match[1] ?? "");
}

describe("the storage handler serves the S3 calls of the upload service on the R2 binding", () => {
  it("puts, gets, heads and deletes an object", async () => {
    const key = `users/${alice}/files/put-get`;
    const put = await s3("PUT", key, { body: "hello storage", headers: { "Content-Type": "application/json", "Content-Length": "13" } });
    expect(put.status).toBe(200);
    expect(put.headers.get("ETag")).toMatch(/^"[0-9a-f]+"$/);

    const got = await s3("GET", key);
    expect(got.status).toBe(200);
    expect(got.headers.get("Content-Type")).toBe("application/json");
    expect(got.headers.get("Content-Length")).toBe("13");
    expect(got.headers.get("ETag")).toBe(put.headers.get("ETag"));
    expect(await got.text()).toBe("hello storage");

    const head = await s3("HEAD", key);
    expect(head.status).toBe(200);
    expect(head.headers.get("Content-Length")).toBe("13");

    expect((await s3("DELETE", key)).status).toBe(204);
    const gone = await s3("GET", key);
    expect(gone.status).toBe(404);
    expect(xmlValues(await gone.text(), "Code")).toEqual(["NoSuchKey"]);
    expect((await s3("HEAD", key)).status).toBe(404);
  });

  it("answers a Range with 206 and Content-Range, as the ranged reads of a download expect", async () => {
    const key = `users/${alice}/blobs/ranged`;
    const data = bytes(1000, 7);
    await s3("PUT", key, { body: data, headers: { "Content-Length": "1000" } });

    const middle = await s3("GET", key, { headers: { Range: "bytes=100-199" } });
    expect(middle.status).toBe(206);
    expect(middle.headers.get("Content-Range")).toBe("bytes 100-199/1000");
    expect(new Uint8Array(await middle.arrayBuffer())).toEqual(data.slice(100, 200));

    const tail = await s3("GET", key, { headers: { Range: "bytes=990-" } });
    expect(tail.headers.get("Content-Range")).toBe("bytes 990-999/1000");
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(data.slice(990));

    for (const [range, served] of [
      ["bytes=995-2000", [995, 999]],
      ["bytes=-10", [990, 999]],
      ["bytes=-5000", [0, 999]],
    ] as const) {
      const response = await s3("GET", key, { headers: { Range: range } });
      expect(response.status, range).toBe(206);
      expect(response.headers.get("Content-Range"), range).toBe(`bytes ${served[0]}-${served[1]}/1000`);
      expect(new Uint8Array(await response.arrayBuffer()), range).toEqual(data.slice(served[0], served[1] + 1));
    }
    for (const range of ["bytes=1000-", "bytes=5000-6000"]) {
      const response = await s3("GET", key, { headers: { Range: range } });
      expect(response.status, range).toBe(416);
      expect(xmlValues(await response.text(), "Code")).toEqual(["InvalidRange"]);
    }
    // What S3 does not serve as one range is the whole object.
    for (const range of ["bytes=0-1,5-6", "items=0-1", "bytes=x-"]) {
      const response = await s3("GET", key, { headers: { Range: range } });
      expect(response.status, range).toBe(200);
      expect((await response.arrayBuffer()).byteLength).toBe(1000);
    }
  });

  it("lists a prefix page by page with continuation tokens", async () => {
    const prefix = `uploads/${alice}/listing/`;
    for (const name of ["a", "b", "c", "d", "e"]) await s3("PUT", prefix + name, { body: name, headers: { "Content-Length": "1" } });
    const keys: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const query = new URLSearchParams({ "list-type": "2", prefix, "max-keys": "2" });
      if (token) query.set("continuation-token", token);
      const page = await s3("GET", `?${query}`);
      expect(page.status).toBe(200);
      const body = await page.text();
      keys.push(...xmlValues(body, "Key"));
      expect(xmlValues(body, "Size").every((size) => size === "1")).toBe(true);
      token = xmlValues(body, "IsTruncated")[0] === "true" ? xmlValues(body, "NextContinuationToken")[0] : undefined;
      pages++;
    } while (token);
    expect(keys).toEqual(["a", "b", "c", "d", "e"].map((name) => prefix + name));
    expect(pages).toBeGreaterThanOrEqual(3);

    const none = await (await s3("GET", `?${new URLSearchParams({ "list-type": "2", prefix, "max-keys": "0" })}`)).text();
    expect(xmlValues(none, "Key")).toEqual([]);
    expect(xmlValues(none, "KeyCount")).toEqual(["0"]);
  });

  it("runs a multipart upload with equal parts and a shorter last one, and aborts another", async () => {
    const key = `users/${alice}/blobs/multipart`;
    const created = await s3("POST", `${key}?uploads`, { headers: { "Content-Type": "application/octet-stream" } });
    expect(created.status).toBe(200);
    const [uploadId = ""] = xmlValues(await created.text(), "UploadId");
    expect(uploadId).not.toBe("");

    const parts = [bytes(5 * MiB, 1), bytes(5 * MiB, 2), bytes(123_456, 3)];
    const etags: string[] = [];
    for (const [index, part] of parts.entries()) {
      const query = `?partNumber=${index + 1}&uploadId=${encodeURIComponent(uploadId)}`;
      const uploaded = await s3("PUT", key + query, { body: part, headers: { "Content-Length": String(part.length) } });
      expect(uploaded.status).toBe(200);
      etags.push(uploaded.headers.get("ETag") ?? "");
    }
    const manifest = `<CompleteMultipartUpload>${etags
      .map((etag, index) => `<Part><PartNumber>${index + 1}</PartNumber><ETag>${etag.replaceAll('"', "&quot;")}</ETag></Part>`)
      .join("")}</CompleteMultipartUpload>`;
    const completed = await s3("POST", `${key}?uploadId=${encodeURIComponent(uploadId)}`, { body: manifest });
    expect(completed.status).toBe(200);
    expect(xmlValues(await completed.text(), "Key")).toEqual([key]);

    const whole = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
    let offset = 0;
    for (const part of parts) {
      whole.set(part, offset);
      offset += part.length;
    }
    const stored = await s3("GET", key);
    expect(await sha256(await stored.arrayBuffer())).toBe(await sha256(whole));

    const other = await s3("POST", `users/${alice}/blobs/aborted?uploads`);
    const [abortedId = ""] = xmlValues(await other.text(), "UploadId");
    expect((await s3("DELETE", `users/${alice}/blobs/aborted?uploadId=${encodeURIComponent(abortedId)}`)).status).toBe(204);
    const late = await s3("PUT", `users/${alice}/blobs/aborted?partNumber=1&uploadId=${encodeURIComponent(abortedId)}`, {
      body: "x",
      headers: { "Content-Length": "1" },
    });
    expect(late.status).toBe(404);
    expect(xmlValues(await late.text(), "Code")).toEqual(["NoSuchUpload"]);
  });

  it("answers an operation it does not serve with 501, not a guess", async () => {
    const copy = await s3("PUT", `users/${alice}/files/copy`, { headers: { "x-amz-copy-source": `/files/users/${alice}/files/x` } });
    expect(copy.status).toBe(501);
    expect((await s3("GET", "?list-type=1&prefix=" + encodeURIComponent(`users/${alice}/`))).status).toBe(501);
  });
});

describe("the storage handler refuses whatever is not this user's", () => {
  const refused = async (response: Response) => {
    expect(response.status).toBe(403);
    expect(xmlValues(await response.text(), "Code")).toEqual(["AccessDenied"]);
  };

  it("refuses another user's keys for every operation, and writes nothing there", async () => {
    const key = `users/${bob}/files/secret`;
    await env.FILES.put(key, "bob's");
    await refused(await s3("GET", key));
    await refused(await s3("PUT", key, { body: "overwritten", headers: { "Content-Length": "11" } }));
    await refused(await s3("DELETE", key));
    await refused(await s3("POST", `${key}?uploads`));
    await refused(await s3("GET", `?list-type=2&prefix=${encodeURIComponent(`users/${bob}/`)}`));
    await refused(await s3("GET", `?list-type=2&prefix=${encodeURIComponent(`uploads/${bob}/`)}`));
    expect(await (await env.FILES.get(key))?.text()).toBe("bob's");
  });

  it("refuses keys outside the user's prefixes and listings of the whole bucket", async () => {
    for (const key of ["other/x", `users/${alice}`, `users/${alice}x/files/a`, `files/${alice}/a`, "users/", "uploads/x"]) {
      await refused(await s3("PUT", key, { body: "x", headers: { "Content-Length": "1" } }));
    }
    await refused(await s3("GET", "?list-type=2"));
    await refused(await s3("GET", "?list-type=2&prefix=users%2F"));
    await refused(await s3("GET", `?list-type=2&prefix=${encodeURIComponent(`users/${alice}`)}`));
    await refused(await s3("GET", `?list-type=2&prefix=${encodeURIComponent(`users/${alice}/`)}&start-after=${encodeURIComponent(`users/${bob}/`)}`));
  });

  it("refuses path tricks: dot segments, encoded slashes and dots, double encoding", async () => {
    await env.FILES.put(`users/${bob}/files/target`, "bob's");
    const tricks = [
      `users/${alice}/../${bob}/files/target`,
      `users/${alice}/%2e%2e/${bob}/files/target`,
      `users/${alice}%2F..%2F${bob}%2Ffiles%2Ftarget`,
      `users/${alice}/files/%2E%2E%2F%2E%2E%2F${bob}/files/target`,
      `users/${alice}/files/%252e%252e/${bob}/files/target`,
      `users/${alice}/files/%2F/x`,
      `users/${alice}/files//x`,
      `users/${alice}/files/a%5Cb`,
      `users/${alice}/files/a%00b`,
    ];
    for (const key of tricks) {
      for (const method of ["GET", "PUT", "DELETE"]) {
        const response = await s3(method, key, method === "PUT" ? { body: "x", headers: { "Content-Length": "1" } } : {});
        expect([403, 400], `${method} ${key}`).toContain(response.status);
        await response.body?.cancel();
      }
    }
    expect(await (await env.FILES.get(`users/${bob}/files/target`))?.text()).toBe("bob's");
    // Dot segments the URL parser resolves before the handler sees the key stay inside the user's prefix.
    const resolved = await s3("PUT", `users/${alice}/files/a/%2e%2e/resolved`, { body: "x", headers: { "Content-Length": "1" } });
    expect(resolved.status).toBe(200);
    const keys = (await env.FILES.list()).objects.map((object) => object.key);
    expect(keys).toContain(`users/${alice}/files/resolved`);
    expect(keys.filter((key) => /(^|\/)\.{1,2}(\/|$)|\/\/|%|\\/.test(key))).toEqual([]);
  });

  it("takes the user from the Durable Object's params, never from the request", async () => {
    const key = `users/${bob}/files/claimed`;
    await env.FILES.put(key, "bob's");
    const claimingBob = new Request(`http://${STORAGE_HOST}/${STORAGE_BUCKET}/${key}`, {
      headers: { "X-User-Id": "bob", Authorization: await tokenFor("bob"), "X-Amz-Security-Token": bob },
    });
    await refused(await storageOutbound(claimingBob, env, { params: { userKey: alice } }));
    await refused(await storageOutbound(claimingBob.clone(), env, {}));
    await refused(await storageOutbound(claimingBob.clone(), env, { params: { userKey: "bob" } }));
    const asBob = await storageOutbound(claimingBob.clone(), env, { params: { userKey: bob } });
    expect(await asBob.text()).toBe("bob's");
  });

  it("is bound to the object's own user when the object starts its container", async () => {
    const user = "bound-user";
    const response = await SELF.fetch(`${BASE}/files`, { headers: bearer(await tokenFor(user)) });
    expect(response.status).toBe(200);
    await response.text();
    const stub = env.USER_CONTAINERS.getByName(user);
    const configuration = await runInDurableObject(stub, (_instance: UserAppContainer, state) =>
      state.storage.kv.get<{ outboundByHostOverrides?: Record<string, { method: string; params?: { userKey?: string } }> }>(
        "OUTBOUND_CONFIGURATION",
      ),
    );
    expect(configuration?.outboundByHostOverrides?.[STORAGE_HOST]).toEqual({ method: "storage", params: { userKey: await userStorageKey(user) } });
  });
});
