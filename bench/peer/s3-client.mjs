// The reference S3 client for the benchmark's s3 targets: what a Node user would upload with
// (@aws-sdk/lib-storage's Upload for large bodies, @aws-sdk/client-s3's PutObject for small ones), into the
// same local S3-compatible server and bucket as the upload service's s3 backend. Started by bench/Program.cs.
//
// Commands arrive on stdin as JSON lines {"id":N,"op":"upload"|"put","key":K,"size":BYTES}; each is answered
// on stdout with "N ok" or "N error <message>" when it is done. Commands run concurrently, so one process
// serves a case at any concurrency, and the bench times each command from its own side.
// Settings: S3_ENDPOINT, S3_BUCKET, S3_KEY (access key id and secret); Upload keeps its defaults (5 MiB
// parts, 4 in flight), printed at start.
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { Readable } from "node:stream";
import { S3Client, PutObjectCommand } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";

const { S3_ENDPOINT: endpoint, S3_BUCKET: bucket, S3_KEY: key } = process.env;
if (!endpoint || !bucket || !key) {
  console.error("s3-client: set S3_ENDPOINT, S3_BUCKET and S3_KEY");
  process.exit(2);
}

// As the service configures its client: path-style, region auto, checksums only where an operation needs one.
const client = new S3Client({
  endpoint,
  region: "auto",
  forcePathStyle: true,
  credentials: { accessKeyId: key, secretAccessKey: key },
  requestChecksumCalculation: "WHEN_REQUIRED",
  responseChecksumValidation: "WHEN_REQUIRED",
});

// One random 4 MiB block repeated, as the bench's own client sends: no command waits on a source.
const block = randomBytes(4 * 1024 * 1024);

function body(size) {
  let left = size;
  return Readable.from((function* () {
    while (left > 0) {
      const count = Math.min(left, block.length);
      left -= count;
      yield count === block.length ? block : block.subarray(0, count);
    }
  })());
}

async function run(command) {
  const params = { Bucket: bucket, Key: command.key };
  if (command.op === "upload") {
    await new Upload({ client, params: { ...params, Body: body(command.size) } }).done();
  } else if (command.op === "put") {
    await client.send(new PutObjectCommand({ ...params, Body: block.subarray(0, command.size), ContentLength: command.size }));
  } else {
    throw new Error(`unknown op ${command.op}`);
  }
}

const defaults = new Upload({ client, params: { Bucket: bucket, Key: "unused", Body: Buffer.alloc(0) } });
console.log(`s3-client: ready; Upload part size ${defaults.partSize} bytes, queue size ${defaults.queueSize}`);

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const command = JSON.parse(line);
  run(command).then(
    () => process.stdout.write(`${command.id} ok\n`),
    (error) => process.stdout.write(`${command.id} error ${String(error?.message ?? error).replace(/\s+/g, " ")}\n`));
}).on("close", () => process.exit(0));
