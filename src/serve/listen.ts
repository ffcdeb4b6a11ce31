/**
 * Binding the server's socket. The failures a user fixes with --host / --port (a port in use, one that needs
 * privileges, an address this machine does not have) become one-line usage errors, found before the model
 * is loaded.
 */
import { createServer } from 'node:net';
import { UsageError } from '../errors.js';

/** The usage error a listen failure stands for, or the error itself when it is not one of those. */
export function listenError(e: unknown, host: string, port: number): unknown {
  switch ((e as NodeJS.ErrnoException)?.code) {
    case 'EADDRINUSE':
      return new UsageError(
        `port ${port} on ${host} is already in use: stop what listens there or pick another --port (0: any free port)`,
      );
    case 'EACCES':
      return new UsageError(
        `not allowed to listen on ${host}:${port} (ports below 1024 need privileges): pick another --port`,
      );
    case 'EADDRNOTAVAIL':
      return new UsageError(
        `--host ${host} is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its interfaces`,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new UsageError(`--host ${host} does not resolve: give an IP address or a known host name`);
    default:
      return e;
  }
}

/** Binds host:port and lets it go again: whether `listen` will work, before seconds go into loading a model. */
export async function checkListen(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen({ host, port, exclusive: true }, resolve);
  }).catch((e) => {
    throw listenError(e, host, port);
  });
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
