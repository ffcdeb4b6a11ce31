/** `longshot convert-timeviper <siglip> <llm-dir> <out-dir>`: a trainable TimeViper from its public parts. */
import { type Command, InvalidArgumentError, Option } from 'commander';

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected an integer ≥ 0');
  return n;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

export function registerConvertTimeViper(program: Command): void {
  program
    .command('convert-timeviper')
    .description(
      'assemble a TimeViper checkpoint (official layout) from timm SigLIP so400m and a Nemotron-H checkpoint (Nano-9B-v2-Base): new projector, optional TransV with α = 0',
    )
    .argument(
      '<siglip>',
      "timm's vit_so400m_patch14_siglip_384 weights (.safetensors, .bin/.pth, or a directory)",
    )
    .argument('<llm-dir>', 'Nemotron-H checkpoint directory (config.json, safetensors, tokenizer)')
    .argument('<out-dir>', 'where to write the TimeViper checkpoint (created if missing)')
    .option('--pdrop-type <stages>', 'token dropping inside the LLM, e.g. uni_7_0.5-attn_39_0.1 (TransV)')
    .addOption(
      new Option('--merge-module <m>', 'transfer dropped tokens (TransV) or only drop')
        .choices(['CrossAttention', 'no_merge'])
        .default('CrossAttention'),
    )
    .option('--init-merge-from-attention', "copy TransV's cross-attentions from the nearest self-attention")
    .option('--image-size <px>', 'SigLIP input side', positiveInt, 384)
    .option('--vision-heads <n>', 'SigLIP attention heads', positiveInt, 16)
    .option('--seed <n>', 'seed of the new tensors', nonNegativeInt, 0)
    .option('--json', 'print the result as JSON')
    .action(
      async (
        siglip: string,
        llm: string,
        out: string,
        o: {
          pdropType?: string;
          mergeModule: 'CrossAttention' | 'no_merge';
          initMergeFromAttention?: boolean;
          imageSize: number;
          visionHeads: number;
          seed: number;
          json?: boolean;
        },
      ) => {
        const { convertTimeViper } = await import('./convert.js');
        const r = await convertTimeViper(siglip, llm, out, {
          pdropType: o.pdropType ?? null,
          mergeModule: o.mergeModule,
          initMergeFromAttention: o.initMergeFromAttention,
          imageSize: o.imageSize,
          visionHeads: o.visionHeads,
          seed: o.seed,
        });
        process.stdout.write(
          o.json
            ? `${JSON.stringify({ out, ...r }, null, 2)}\n`
            : `wrote ${out}: ${r.tensors} tensors, ${r.parameters.toLocaleString('en-US')} parameters, <image> = ${r.imageTokenId}\n`,
        );
      },
    );
}
