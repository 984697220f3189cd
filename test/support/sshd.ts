import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";

/**
 * A real OpenSSH server on 127.0.0.1 (and any other of this machine's addresses, such as the
 * gateway the Dagger engine's containers reach it by) with a generated host key, and a client
 * key it trusts.
 */
export class TestSshd {
  readonly dir = mkdtempSync(join(tmpdir(), "slipway-sshd-"));
  readonly keyPath = join(this.dir, "client_key");
  readonly knownHostsPath = join(this.dir, "known_hosts");
  readonly wrongKnownHostsPath = join(this.dir, "known_hosts_wrong");
  private proc?: ResultPromise;

  constructor(
    readonly port: number,
    readonly addresses: readonly string[] = ["127.0.0.1"],
  ) {}

  async start(): Promise<void> {
    const keygen = (file: string) => execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
    await Promise.all([keygen(join(this.dir, "host_key")), keygen(this.keyPath), keygen(join(this.dir, "other_host_key"))]);
    writeFileSync(join(this.dir, "authorized_keys"), readFileSync(`${this.keyPath}.pub`));
    chmodSync(join(this.dir, "authorized_keys"), 0o600);
    const key = (pub: string) => readFileSync(pub, "utf8").split(" ").slice(0, 2).join(" ");
    const entry = (pub: string) => this.addresses.map((a) => `[${a}]:${this.port} ${key(pub)}\n`).join("");
    writeFileSync(this.knownHostsPath, entry(join(this.dir, "host_key.pub")));
    writeFileSync(this.wrongKnownHostsPath, entry(join(this.dir, "other_host_key.pub")));
    writeFileSync(
      join(this.dir, "sshd_config"),
      [
        `Port ${this.port}`,
        ...this.addresses.map((a) => `ListenAddress ${a}`),
        `HostKey ${join(this.dir, "host_key")}`,
        `AuthorizedKeysFile ${join(this.dir, "authorized_keys")}`,
        `PidFile ${join(this.dir, "sshd.pid")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        // The key files live in a temp dir; production hosts keep StrictModes on.
        "StrictModes no",
        "",
      ].join("\n"),
    );
    mkdirSync("/run/sshd", { recursive: true });
    this.proc = execa("/usr/sbin/sshd", ["-D", "-e", "-f", join(this.dir, "sshd_config")], { reject: false });
    for (let i = 0; i < 50; i++) {
      const probe = await execa("ssh-keyscan", ["-p", String(this.port), "127.0.0.1"], { reject: false });
      if (probe.exitCode === 0 && probe.stdout) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`sshd did not start on 127.0.0.1:${this.port}`);
  }

  async stop(): Promise<void> {
    this.proc?.kill("SIGTERM");
    await this.proc;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Debian's docker-registry (distribution) on 127.0.0.1:port, filesystem storage. */
export class TestRegistry {
  readonly dir = mkdtempSync(join(tmpdir(), "slipway-registry-"));
  private proc?: ResultPromise;

  /**
   * `listen`: where it listens (0.0.0.0 for the swarm's nodes, which reach it through their bridge).
   * `storage`: a directory kept between runs, so a push of unchanged layers uploads nothing.
   */
  constructor(
    readonly port: number,
    readonly listen = "127.0.0.1",
    readonly storage?: string,
  ) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const config = join(this.dir, "config.yml");
    writeFileSync(
      config,
      `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${this.storage ?? join(this.dir, "data")}\nhttp:\n  addr: ${this.listen}:${this.port}\n`,
    );
    this.proc = execa("docker-registry", ["serve", config], { reject: false });
    for (let i = 0; i < 50; i++) {
      const ok = await fetch(`http://${this.host}/v2/`).then((r) => r.ok, () => false);
      if (ok) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`registry did not start on ${this.host}`);
  }

  async push(image: string, repoTag: string): Promise<void> {
    await execa("docker", ["tag", image, `${this.host}/${repoTag}`]);
    await execa("docker", ["push", "-q", `${this.host}/${repoTag}`]);
  }

  async stop(): Promise<void> {
    this.proc?.kill("SIGTERM");
    await this.proc;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
