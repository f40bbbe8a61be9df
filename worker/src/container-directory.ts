import { DurableObject } from "cloudflare:workers";

/** What the directory knows of one user's container, from the last start and stop its Durable Object reported. */
export interface DirectoryEntry {
  user: string;
  /** `healthy` after a start (the Container class calls onStart once the port answers), `stopped` after a stop. */
  status: "healthy" | "stopped";
  /** The exit code of the last stop (null until the container has stopped once). */
  exitCode: number | null;
  /** Milliseconds since the epoch. */
  lastChange: number;
  lastStart: number | null;
  lastStop: number | null;
}

export interface DirectoryPage {
  entries: DirectoryEntry[];
  /** The last user of this page when more follow: pass it as `after` for the next page. */
  next: string | null;
}

interface Row extends Record<string, SqlStorageValue> {
  user: string;
  status: string;
  exit_code: number | null;
  last_change: number;
  last_start: number | null;
  last_stop: number | null;
}

/**
 * The list of users' containers (a Durable Object namespace cannot be enumerated). Each `UserAppContainer`
 * reports its starts and stops here (onStart/onStop), so the admin API lists every container without waking
 * any of them. One instance (`DIRECTORY_NAME`) serves the whole Worker: it is written twice per container
 * run (a start, a stop), which a single Durable Object absorbs at far more users than `max_instances` allows
 * to run at once. Called over RPC only.
 */
export class ContainerDirectory extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    ctx.storage.sql.exec(`CREATE TABLE IF NOT EXISTS containers (
      user TEXT PRIMARY KEY NOT NULL,
      status TEXT NOT NULL,
      exit_code INTEGER,
      last_change INTEGER NOT NULL,
      last_start INTEGER,
      last_stop INTEGER
    ) WITHOUT ROWID`);
  }

  started(user: string, at: number): void {
    this.ctx.storage.sql.exec(
      `INSERT INTO containers (user, status, last_change, last_start) VALUES (?1, 'healthy', ?2, ?2)
       ON CONFLICT (user) DO UPDATE SET status = 'healthy', last_change = ?2, last_start = ?2`,
      user,
      at,
    );
  }

  stopped(user: string, exitCode: number, at: number): void {
    this.ctx.storage.sql.exec(
      `INSERT INTO containers (user, status, exit_code, last_change, last_stop) VALUES (?1, 'stopped', ?2, ?3, ?3)
       ON CONFLICT (user) DO UPDATE SET status = 'stopped', exit_code = ?2, last_change = ?3, last_stop = ?3`,
      user,
      exitCode,
      at,
    );
  }

  get(user: string): DirectoryEntry | null {
    const rows = this.ctx.storage.sql.exec<Row>("SELECT * FROM containers WHERE user = ?", user).toArray();
    return rows.length === 0 ? null : toEntry(rows[0]!);
  }

  /** Up to `limit` entries in user id order, those after the user `after` when given. */
  list(after: string | null, limit: number): DirectoryPage {
    const rows = this.ctx.storage.sql
      .exec<Row>("SELECT * FROM containers WHERE user > ? ORDER BY user LIMIT ?", after ?? "", limit + 1)
      .toArray();
    const entries = rows.slice(0, limit).map(toEntry);
    return { entries, next: rows.length > limit ? entries[entries.length - 1]!.user : null };
  }
}

/** The directory's one instance. */
export const DIRECTORY_NAME = "directory";

function toEntry(row: Row): DirectoryEntry {
  return {
    user: row.user,
    status: row.status === "healthy" ? "healthy" : "stopped",
    exitCode: row.exit_code,
    lastChange: row.last_change,
    lastStart: row.last_start,
    lastStop: row.last_stop,
  };
}
