// The peer for the benchmark: the tus server a Node user would pick (@tus/server + @tus/file-store),
// on 127.0.0.1:$PORT at /uploads, storing under $PEER_DIR. Started and stopped by bench/Program.cs.
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const port = Number(process.env.PORT);
const directory = process.env.PEER_DIR;
if (!port || !directory) {
  console.error("peer: set PORT and PEER_DIR");
  process.exit(2);
}

const tus = new Server({ path: "/uploads", datastore: new FileStore({ directory }) });
const server = http.createServer((req, res) => tus.handle(req, res));
server.listen(port, "127.0.0.1", () => console.log(`peer: listening on http://127.0.0.1:${port}/uploads`));
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => server.close(() => process.exit(0)));
