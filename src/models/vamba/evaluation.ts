/**
 * Vamba's own evaluation (TIGER-AI-Lab/Vamba `eval/utils_*.py`, research/vamba.md §4.4, §5.3): its
 * multiple-choice prompt and its answer rule (the first letter after "the answer is"), which its published
 * numbers used. Charades-STA, VNBench and the needle task keep their official prompts.
 */
import { vambaChoice } from '../../eval/answers.js';
import type { FamilyEvaluation } from '../../eval/benchmark.js';
import { lettered, MCQ_INSTRUCTION } from '../../eval/benchmark.js';

const SELECT = 'Select the best answer to the following multiple-choice question based on the video.';

export const vambaEvaluation: FamilyEvaluation = {
  prompt(benchmark, item) {
    if (benchmark === 'mvbench')
      return {
        text: `Question: ${item.question}\n${lettered(item.options)}\n${MCQ_INSTRUCTION}`,
        parse: vambaChoice,
      };
    if (!['videomme', 'lvbench', 'mlvu_dev', 'longvideobench_val_v', 'nextqa_mc_test'].includes(benchmark))
      return undefined;
    const letters = item.options.map((_, i) => String.fromCharCode(65 + i));
    const respond = `Respond with only the letter (${letters.slice(0, -1).join(', ')}, or ${letters.at(-1)}) of the correct option.`;
    // Video-MME's option strings are joined by spaces in Vamba's script; the others one per line.
    const options =
      benchmark === 'videomme'
        ? item.options.map((o, i) => `${letters[i]}. ${o}`).join(' ')
        : lettered(item.options);
    return { text: `${SELECT} ${respond}\n${item.question}\n${options}`, parse: vambaChoice };
  },
};
