/** `longshot download <repo>`: put a hub checkpoint into the Hugging Face cache (resuming, verified). */
import type { Command } from 'commander';
import { hubCacheDir } from '../../hub/cache.js';
import { snapshotDownload } from '../../hub/download.js';
import { printJson } from '../options.js';
import { downloadProgress, progressEnabled } from '../progress.js';

export function register(program: Command): void {
  program
    .command('download')
    .description('download a model from the Hugging Face hub into its cache (only the files longshot reads)')
    .argument('<repo>', 'model id, e.g. TIGER-Lab/Vamba-Qwen2-VL-7B')
    .option('--revision <rev>', 'branch, tag or commit', 'main')
    .option('--json', 'print one JSON object (no progress bar)')
    .addHelpText(
      'after',
      `
Files go to the cache huggingface_hub uses (HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub),
so checkpoints downloaded by Python tools are reused and vice versa. Only config/tokenizer/processor JSON
and the safetensors weights are fetched; an interrupted download resumes where it stopped.
Environment: HF_TOKEN (gated or private repos), HF_ENDPOINT (a mirror), HF_HUB_OFFLINE=1 (cache only).

Examples:
  $ longshot download TIGER-Lab/Vamba-Qwen2-VL-7B
  $ HF_TOKEN=hf_xxx longshot download Qwen/Qwen2-VL-7B-Instruct --revision main --json`,
    )
    .action(async (repo: string, o: { revision: string; json?: boolean }) => {
      const snap = await snapshotDownload(repo, {
        revision: o.revision,
        reporter: downloadProgress(progressEnabled(o.json)),
      });
      if (o.json) printJson({ ...snap, cache: hubCacheDir() });
      else process.stdout.write(`${snap.dir}\n`);
    });
}
