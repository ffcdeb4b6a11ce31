export { hubCacheDir, hubToken, isOffline, looksLikeRepoId, RepoCache } from './cache.js';
export {
  cachedSnapshot,
  DEFAULT_ENDPOINT,
  type DownloadReporter,
  type HubOptions,
  type Snapshot,
  snapshotDownload,
} from './download.js';
export { METADATA_FILES, selectFiles, WEIGHTS_INDEX, WEIGHTS_SINGLE } from './files.js';
export { resolveModel } from './resolve.js';
