/**
 * A release slot's unix socket, claimed without ever taking it from a live server. A slot can
 * briefly hold two containers (a leftover of an interrupted roll, then the next roll), and the
 * path must keep belonging to whichever server is alive: the old code unlinked whatever was there
 * on start, and Node unlinks the bound path on close even when it now names another server.
 */
import { randomBytes } from "node:crypto";
import { chmod, rename } from "node:fs/promises";
import net from "node:net";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a server accepts connections at `path` (a file left by a killed server does not). */
export function socketIsLive(path: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ path });
    const done = (live: boolean) => {
      socket.destroy();
      resolve(live);
    };
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
    // A server too busy to accept in time is still alive.
    socket.setTimeout(timeoutMs, () => done(true));
  });
}

export interface ClaimOptions {
  /** Called while a live server holds the path, with the seconds waited so far. */
  onWait?: (waitedSeconds: number) => void;
  pollMs?: number;
}

/**
 * Listens at `path`: waits while a live server holds it, binds a private name beside it, and
 * renames that over `path` (atomic; a dead server's file is simply replaced). Node later unlinks
 * only the private name, which is gone, so closing never removes a successor's socket.
 */
export async function claimSocket(listen: (path: string) => Promise<unknown>, path: string, opts: ClaimOptions = {}): Promise<void> {
  const pollMs = opts.pollMs ?? 1_000;
  for (let waited = 0; await socketIsLive(path); waited += pollMs) {
    opts.onWait?.(waited / 1000);
    await sleep(pollMs);
  }
  const bound = `${path}.${process.pid}-${randomBytes(4).toString("hex")}`;
  await listen(bound);
  // The proxy runs as another user; the shared directory is the boundary, not the socket.
  await chmod(bound, 0o666);
  await rename(bound, path);
}
