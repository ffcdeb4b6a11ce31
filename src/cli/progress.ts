/**
 * Progress bars on stderr (cli-progress) for downloads, decoding and encoding. They are drawn only on an
 * interactive terminal and never with --json, so pipes and scripts get clean output.
 */
import cliProgress from 'cli-progress';
import type { VideoProgress } from '../facade/types.js';
import type { DownloadReporter } from '../hub/download.js';

export function progressEnabled(json?: boolean): boolean {
  return !json && Boolean(process.stderr.isTTY);
}

const mib = (n: number) => (n / 2 ** 20).toFixed(1);

function bar(label: string, unit: 'MiB' | 'frames' | 'items'): cliProgress.SingleBar {
  return new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {percentage}% | {value}/{total} ${unit} | {eta_formatted} left`,
      formatValue: (v, _o, type) =>
        unit === 'MiB' && (type === 'value' || type === 'total') ? mib(v) : String(v),
      hideCursor: true,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
}

export function downloadProgress(enabled: boolean): DownloadReporter | undefined {
  if (!enabled) return undefined;
  const b = bar('download', 'MiB');
  let started = false;
  return {
    start(total) {
      if (total === 0) return;
      started = true;
      b.start(total, 0);
    },
    advance: (n) => started && b.increment(n),
    finish: () => started && b.stop(),
  };
}

/** One bar for the frames of a video as they are decoded and encoded. */
export function videoProgress(enabled: boolean): VideoProgress | undefined {
  if (!enabled) return undefined;
  const b = bar('decode+encode', 'frames');
  return {
    start: (total) => b.start(total, 0),
    frames: (done) => b.update(done),
    finish: () => b.stop(),
  };
}

/** One bar for the items of a benchmark run (resumed items count as done from the start). */
export function itemProgress(
  enabled: boolean,
  label: string,
): ((done: number, total: number) => void) | undefined {
  if (!enabled) return undefined;
  const b = bar(label, 'items');
  let started = false;
  return (done, total) => {
    if (!started) b.start(total, done);
    else b.update(done);
    started = true;
    if (done === total) b.stop();
  };
}
