/** `longshot eval <benchmark>`: a standard benchmark, run in process or against an OpenAI-compatible endpoint. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { benchmarks } from '../../eval/benchmarks/index.js';
import { endpoint, inProcess } from '../../eval/responders.js';
import { lmmsResults, markdownTable } from '../../eval/results.js';
import { runBenchmark } from '../../eval/run.js';
import { VideoLM } from '../../facade/video-lm.js';
import { probe } from '../../media/index.js';
import { modelFamilies } from '../../models/registry.js';
import { addModelOptions, addSamplingOptions, positiveInt, printJson, samplingOf } from '../options.js';
import { downloadProgress, itemProgress, progressEnabled } from '../progress.js';

const durationOf = async (video: string) => (await probe(video)).durationSec ?? 0;

function shardOf(v: string): { index: number; count: number } {
  const m = v.match(/^(\d+)\/(\d+)$/);
  const [index, count] = m ? [Number(m[1]), Number(m[2])] : [Number.NaN, Number.NaN];
  if (!(count >= 1 && index >= 0 && index < count))
    throw new UsageError(`--shard must be i/n with 0 ≤ i < n (e.g. 0/4), got '${v}'`);
  return { index, count };
}

export function register(program: Command): void {
  const names = Object.keys(benchmarks(durationOf));
  const cmd = program
    .command('eval')
    .description('score a model on a standard long-video benchmark (official prompts, parsing and metrics)')
    .argument('<benchmark>', names.join(', '))
    .requiredOption('--data <dir>', 'the benchmark as released (see docs/eval.md for each layout)')
    .option('--endpoint <url>', 'an OpenAI-compatible server (longshot serve, vLLM, …) instead of --model')
    .option('--endpoint-model <id>', 'model id to send to the endpoint (default: the first it lists)')
    .option(
      '--endpoint-frames <n>',
      'send n uniformly sampled frames as images instead of the video',
      positiveInt('--endpoint-frames'),
    )
    .option('--endpoint-video-data', 'send the video bytes (data: URL) instead of a file:// URL')
    .option('--prompt-family <name>', 'with --endpoint: ask with this model family’s own prompts')
    .option(
      '--out <dir>',
      'where predictions.jsonl, results.json and results.md go (default: eval-out/<benchmark>)',
    )
    .option('--limit <n>', 'only the first n items (of the shard)', positiveInt('--limit'))
    .option('--shard <i/n>', 'only items k with k mod n = i, to split a run across processes')
    .option('--max-new-tokens <n>', 'override the benchmark’s answer length', positiveInt('--max-new-tokens'))
    .option('--json', 'print the results JSON (no progress bar)');
  addSamplingOptions(addModelOptions(cmd))
    .addHelpText(
      'after',
      `
Examples:
  $ longshot eval videomme --data ~/data/Video-MME --model TIGER-Lab/Vamba-Qwen2-VL-7B --device cuda
  $ longshot eval vnbench --data ~/data/VNBench --endpoint http://127.0.0.1:8000 --shard 0/4`,
    )
    .action(async (name: string, o) => {
      const bench = benchmarks(durationOf)[name];
      if (!bench) throw new UsageError(`unknown benchmark '${name}'; choose from ${names.join(', ')}`);
      if (o.endpoint && o.model) throw new UsageError('give --model or --endpoint, not both');
      const shard = o.shard === undefined ? undefined : shardOf(o.shard);
      const out = o.out ?? join('eval-out', shard ? `${name}-${shard.index}of${shard.count}` : name);
      const items = await bench.read(o.data);
      const show = progressEnabled(o.json);
      let family = o.promptFamily as string | undefined;
      let model: VideoLM | undefined;
      if (!o.endpoint) {
        model = await VideoLM.load(o.model, {
          device: o.device,
          revision: o.revision,
          onDownload: downloadProgress(show),
        });
        family = model.info.architecture;
      }
      const evaluation = modelFamilies().find((f) => f.name === family);
      if (family && !evaluation) throw new UsageError(`--prompt-family: no model family '${family}'`);
      const local = model ? inProcess(model) : undefined;
      const responder =
        local ??
        endpoint({
          url: o.endpoint,
          model: o.endpointModel,
          frames: o.endpointFrames,
          video: o.endpointVideoData ? 'data' : 'file',
        });
      try {
        const r = await runBenchmark({
          benchmark: bench,
          items,
          responder,
          predictions: join(out, 'predictions.jsonl'),
          family: evaluation?.evaluation,
          sampling: samplingOf(o),
          maxNewTokens: o.maxNewTokens,
          limit: o.limit,
          shard,
          onProgress: itemProgress(show, name),
        });
        const config = {
          model: o.endpoint ?? o.model ?? 'the embedded model',
          limit: o.limit,
          shard: o.shard,
          effective: r.items.length,
          original: items.length,
        };
        const results = lmmsResults(bench.name, r.scores, config);
        await writeFile(join(out, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
        const md = markdownTable(bench.name, r.scores, config);
        await writeFile(join(out, 'results.md'), md);
        if (o.json) printJson(results);
        else process.stdout.write(md);
      } finally {
        local?.[Symbol.dispose]();
        model?.dispose();
      }
    });
}
