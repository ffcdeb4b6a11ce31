/**
 * The queue settings a command line shows as defaults. Apart from the modules that talk to Redis, so that the CLI
 * can describe `worker` and `batch` without loading BullMQ and ioredis (they load when those commands run).
 */
export const DEFAULT_QUEUE = 'longshot';
/** How often a failed job is tried in all. */
export const DEFAULT_ATTEMPTS = 3;
