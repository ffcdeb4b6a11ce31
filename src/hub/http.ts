/**
 * HTTP with the hub's conventions: Bearer token, errors mapped from status and `X-Error-Code` to messages
 * that say what to do, and redirects followed by hand so the token never leaves the hub's origin (the
 * CDN that serves LFS files gets a signed URL instead).
 */
import { ModelError } from '../errors.js';

const MAX_REDIRECTS = 10;

export interface HubRequest {
  method?: 'GET' | 'HEAD';
  /** Sent only to `origin` (the hub), never to where it redirects. */
  auth?: { token?: string; origin: string };
  headers?: Record<string, string>;
  /**
   * Which redirects to follow: 'all', or only 'relative' ones (a renamed repo). The hub answers a HEAD for
   * an LFS file with a redirect to the CDN whose own headers (X-Linked-Etag, X-Linked-Size) are the ones
   * we need, so HEADs stop at an absolute redirect.
   */
  follow: 'all' | 'relative';
  signal?: AbortSignal;
}

/** One request with manual redirect handling. Returns the final response (a 3xx when it stopped at one). */
export async function hubFetch(url: string, req: HubRequest): Promise<Response> {
  for (let hop = 0; ; hop++) {
    const headers: Record<string, string> = { 'user-agent': 'longshot', ...req.headers };
    if (req.auth?.token && new URL(url).origin === req.auth.origin)
      headers.authorization = `Bearer ${req.auth.token}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: req.method ?? 'GET',
        headers,
        redirect: 'manual',
        signal: req.signal,
      });
    } catch (e) {
      throw new ModelError(
        `cannot reach ${new URL(url).origin} (${causeOf(e)}); check the network, or set HF_HUB_OFFLINE=1 to use only cached models`,
        { cause: e },
      );
    }
    const location = res.headers.get('location');
    if (res.status < 300 || res.status >= 400 || !location) return res;
    const relative = !/^[a-z][a-z0-9+.-]*:/i.test(location);
    if (req.follow === 'relative' && !relative) return res;
    if (hop >= MAX_REDIRECTS) throw new ModelError(`too many redirects fetching ${url}`);
    await res.body?.cancel();
    url = new URL(location, url).toString();
  }
}

export function causeOf(e: unknown): string {
  const err = e as { cause?: { code?: string; message?: string }; message?: string };
  return err.cause?.code ?? err.cause?.message ?? err.message ?? String(e);
}

/** Throws a ModelError for a failed hub response, worded for what the user can do about it. */
export async function raiseForStatus(res: Response, repo: string, what: string): Promise<void> {
  if (res.ok || (res.status >= 300 && res.status < 400)) return;
  const code = res.headers.get('x-error-code') ?? '';
  const detail = (res.headers.get('x-error-message') ?? (await res.text().catch(() => ''))).slice(0, 200);
  await res.body?.cancel().catch(() => {});
  const page = `https://huggingface.co/${repo}`;
  if (code === 'GatedRepo' || res.status === 403)
    throw new ModelError(
      `${repo} is gated: accept its terms at ${page} while logged in, then set HF_TOKEN to a token of that account`,
    );
  if (res.status === 401)
    throw new ModelError(
      `${repo}: not authorized (${code || 'HTTP 401'}); the repo is private, gated or misspelled — set HF_TOKEN to a token that can read it, or check the id`,
    );
  if (code === 'RevisionNotFound') throw new ModelError(`${repo}: revision not found (${what})`);
  if (code === 'EntryNotFound') throw new ModelError(`${repo}: file not found: ${what}`);
  if (res.status === 404) throw new ModelError(`${repo}: not found on the hub (${what}); check the model id`);
  throw new ModelError(
    `${repo}: the hub answered HTTP ${res.status} for ${what}${detail ? `: ${detail}` : ''}`,
  );
}
