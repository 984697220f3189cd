// Types for fake-github.mjs (plain JS so that fake-gh.mjs runs under node without a build step).
export declare class HttpError extends Error {
  status: number;
  constructor(status: number, message: string);
}
export declare function serveGitHub(stateFile: string, host: string, token: string): Promise<{ url: string; close: () => Promise<void> }>;
