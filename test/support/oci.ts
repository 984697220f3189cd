import { createHash } from "node:crypto";
import { execa } from "execa";

/** Trivy's DB as an OCI artifact: one gzipped tar layer of trivy.db and metadata.json. */
const DB_LAYER = "application/vnd.aquasec.trivy.db.layer.v1.tar+gzip";
const DB_CONFIG = "application/vnd.aquasec.trivy.config.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

const sha256 = (data: Buffer) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

async function pushBlob(base: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const start = await fetch(`${base}/blobs/uploads/`, { method: "POST" });
  if (start.status !== 202) throw new Error(`blob upload refused: HTTP ${start.status}`);
  const location = new URL(start.headers.get("location")!, base);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, { method: "PUT", body: new Uint8Array(data), headers: { "content-type": "application/octet-stream" } });
  if (put.status !== 201) throw new Error(`blob upload failed: HTTP ${put.status}`);
  return digest;
}

/**
 * Pushes the DB in `cacheDir/db` to `registry/repository:tag` over the registry's HTTP API, the
 * way `oras push` (what Trivy's docs use for a DB mirror) lays it out.
 */
export async function pushTrivyDb(registry: string, repository: string, tag: string, cacheDir: string): Promise<string> {
  const base = `http://${registry}/v2/${repository}`;
  const { stdout: layer } = await execa("tar", ["-czf", "-", "-C", `${cacheDir}/db`, "trivy.db", "metadata.json"], { encoding: "buffer" });
  const config = Buffer.from("{}");
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: DB_CONFIG, digest: await pushBlob(base, config), size: config.length },
      layers: [
        {
          mediaType: DB_LAYER,
          digest: await pushBlob(base, Buffer.from(layer)),
          size: layer.length,
          annotations: { "org.opencontainers.image.title": "db.tar.gz" },
        },
      ],
    }),
  );
  const put = await fetch(`${base}/manifests/${tag}`, { method: "PUT", body: new Uint8Array(manifest), headers: { "content-type": OCI_MANIFEST } });
  if (put.status !== 201) throw new Error(`manifest push failed: HTTP ${put.status} ${await put.text()}`);
  return sha256(manifest);
}

/** The digest the registry serves for `repository:tag`, as a pull by tag would resolve it. */
export async function registryDigest(registry: string, repository: string, tag: string): Promise<string> {
  const res = await fetch(`http://${registry}/v2/${repository}/manifests/${tag}`, {
    method: "HEAD",
    headers: {
      accept: [
        "application/vnd.oci.image.index.v1+json",
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
      ].join(", "),
    },
  });
  if (!res.ok) throw new Error(`${registry}/${repository}:${tag}: HTTP ${res.status}`);
  return res.headers.get("docker-content-digest") ?? "";
}
