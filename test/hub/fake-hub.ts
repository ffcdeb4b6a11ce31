/**
 * A local stand-in for the Hugging Face hub on 127.0.0.1, speaking its URL scheme and headers:
 * `/api/models/{repo}/revision/{rev}` lists siblings; `/{repo}/resolve/{rev}/{file}` answers regular files
 * with ETag = git blob sha1 and LFS files with a 302 to a separate "CDN" origin plus X-Linked-Etag (sha256)
 * and X-Linked-Size. The CDN honours Range requests and can be told to drop a connection mid-file.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  data: Buffer;
  lfs?: boolean;
}

export interface FakeRepo {
  commit: string;
  files: Record<string, FakeFile>;
  /** Requires `Authorization: Bearer <token>` on resolve requests. */
  gatedToken?: string;
  /** Answer resolve/api requests with a relative redirect to this repo id (a renamed repo). */
  movedTo?: string;
}

export interface Logged {
  method: string;
  url: string;
  range?: string;
  authorization?: string;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly hubLog: Logged[] = [];
  readonly cdnLog: Logged[] = [];
  /** sha256 → bytes after which the next CDN response for that blob is cut (once). */
  readonly breakAfter = new Map<string, number>();
  /** sha256 → bytes served instead of the real content (to test verification). */
  readonly corrupt = new Map<string, Buffer>();
  private hub!: Server;
  private cdn!: Server;
  hubUrl = '';
  cdnUrl = '';

  async start(): Promise<this> {
    this.hub = createServer((q, s) => this.onHub(q, s));
    this.cdn = createServer((q, s) => this.onCdn(q, s));
    this.hubUrl = await listen(this.hub);
    this.cdnUrl = await listen(this.cdn);
    return this;
  }

  async stop(): Promise<void> {
    for (const s of [this.hub, this.cdn]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }

  private blobs(): Map<string, Buffer> {
    const m = new Map<string, Buffer>();
    for (const r of this.repos.values())
      for (const f of Object.values(r.files)) m.set(sha256(f.data), f.data);
    return m;
  }

  private onHub(req: IncomingMessage, res: ServerResponse) {
    const url = decodeURIComponent(req.url ?? '');
    this.hubLog.push({ method: req.method!, url, authorization: req.headers.authorization });
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(url);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const repoId = api?.[1] ?? resolve?.[1];
    const repo = repoId ? this.repos.get(repoId) : undefined;
    if (!repo) return end(res, 404, { 'x-error-code': 'RepoNotFound' }, 'Repository not found');
    if (repo.movedTo) {
      const loc = api
        ? `/api/models/${repo.movedTo}/revision/${api[2]}`
        : `/${repo.movedTo}/resolve/${resolve![2]}/${resolve![3]}`;
      return end(res, 307, { location: loc });
    }
    const rev = (api ?? resolve)![2];
    if (rev !== 'main' && rev !== repo.commit)
      return end(res, 404, { 'x-error-code': 'RevisionNotFound' }, 'Invalid rev id');
    if (api)
      return end(
        res,
        200,
        { 'content-type': 'application/json' },
        JSON.stringify({
          id: repoId,
          sha: repo.commit,
          siblings: Object.keys(repo.files).map((rfilename) => ({ rfilename })),
        }),
      );
    if (repo.gatedToken && req.headers.authorization !== `Bearer ${repo.gatedToken}`)
      return end(res, 401, { 'x-error-code': 'GatedRepo' }, 'Access to this model is restricted');
    const file = repo.files[resolve![3]];
    if (!file) return end(res, 404, { 'x-error-code': 'EntryNotFound' }, 'Entry not found');
    const common = { 'x-repo-commit': repo.commit };
    if (file.lfs) {
      const sha = sha256(file.data);
      return end(res, 302, {
        ...common,
        location: `${this.cdnUrl}/blobs/${sha}`,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(file.data.length),
      });
    }
    res.writeHead(200, { ...common, etag: `"${gitSha1(file.data)}"`, 'content-length': file.data.length });
    res.end(req.method === 'HEAD' ? undefined : file.data);
  }

  private onCdn(req: IncomingMessage, res: ServerResponse) {
    this.cdnLog.push({
      method: req.method!,
      url: req.url!,
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    const sha = /^\/blobs\/([0-9a-f]{64})$/.exec(req.url ?? '')?.[1];
    const real = sha ? this.blobs().get(sha) : undefined;
    if (!sha || !real) return end(res, 404, {}, 'no such blob');
    const data = this.corrupt.get(sha) ?? real;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const from = m ? Number(m[1]) : 0;
    const body = data.subarray(from);
    const headers: Record<string, string | number> = { 'content-length': body.length, etag: `"${sha}"` };
    if (m) headers['content-range'] = `bytes ${from}-${data.length - 1}/${data.length}`;
    res.writeHead(m ? 206 : 200, headers);
    const cut = this.breakAfter.get(sha);
    if (cut !== undefined && cut < body.length) {
      this.breakAfter.delete(sha);
      res.write(body.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    res.end(body);
  }
}

function end(res: ServerResponse, status: number, headers: Record<string, string>, body?: string) {
  res.writeHead(status, headers);
  res.end(body);
}

function listen(server: Server): Promise<string> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    ),
  );
}

/** Bytes that are not all alike, so a resumed download at a wrong offset is caught by the hash. */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
