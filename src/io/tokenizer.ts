/**
 * A checkpoint's tokenizer (`tokenizer.json` + `tokenizer_config.json`, run by @huggingface/tokenizers)
 * and its chat template (run by @huggingface/jinja), with the names the rest of longshot uses.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer as HFTokenizer } from '@huggingface/tokenizers';
import { ModelError } from '../errors.js';
import { fileExists, isObject, type JsonObject, readJsonFile } from './json-fields.js';
import { StreamDecoder, type StreamDecoderOptions } from './stream-decoder.js';

/** One part of a multimodal message, in the Hugging Face / OpenAI-like shape chat templates expect. */
export type ContentPart =
  | { type: 'text'; text: string }
  | { type: 'video'; video?: unknown }
  | { type: 'image'; image?: unknown }
  | JsonObject;

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string | ContentPart[];
}

export interface ChatTemplateOptions {
  /** Ends the prompt with the assistant header so the model answers next. */
  addGenerationPrompt?: boolean;
  /** Further template variables (e.g. `add_vision_id`, `tools`). */
  variables?: JsonObject;
}

export interface SpecialTokens {
  bos: string | null;
  eos: string | null;
  pad: string | null;
  unk: string | null;
}

/** Where a chat template can live, in the order transformers prefers them. */
const TEMPLATE_FILES = ['chat_template.jinja', 'chat_template.json'] as const;

export class Tokenizer {
  private readonly hf: HFTokenizer;
  private readonly specialIds: ReadonlySet<number>;
  private compiled: Template | null = null;
  #vocabSize?: number;
  readonly special: SpecialTokens;

  constructor(
    tokenizerJson: JsonObject,
    readonly config: JsonObject,
    /** The chat template source, or null when the checkpoint has none. */
    readonly chatTemplate: string | null = templateFromConfig(config),
    private readonly source = 'tokenizer',
  ) {
    try {
      this.hf = new HFTokenizer(tokenizerJson, config);
    } catch (e) {
      throw new ModelError(`${source}: unsupported or malformed tokenizer.json (${(e as Error).message})`, {
        cause: e,
      });
    }
    const name = (k: string) => {
      const v = config[k];
      return typeof v === 'string' ? v : isObject(v) && typeof v.content === 'string' ? v.content : null;
    };
    this.special = {
      bos: name('bos_token'),
      eos: name('eos_token'),
      pad: name('pad_token'),
      unk: name('unk_token'),
    };
    this.specialIds = new Set(
      [...this.hf.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) => t.id),
    );
  }

  /** Loads `tokenizer.json`, `tokenizer_config.json` and the chat template from a checkpoint directory. */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tokenizerPath = join(dir, 'tokenizer.json');
    if (!(await fileExists(tokenizerPath)))
      throw new ModelError(
        `${tokenizerPath}: file not found (no tokenizer.json; longshot needs the checkpoint's tokenizer to ask questions)`,
      );
    const json = await readJsonFile(tokenizerPath);
    if (!isObject(json)) throw new ModelError(`${tokenizerPath}: not a tokenizer (expected a JSON object)`);
    const configPath = join(dir, 'tokenizer_config.json');
    const config = (await fileExists(configPath)) ? await readJsonFile(configPath) : {};
    if (!isObject(config)) throw new ModelError(`${configPath}: expected a JSON object`);
    return new Tokenizer(json, config, (await templateFromFiles(dir)) ?? templateFromConfig(config), dir);
  }

  /** Number of tokens including added ones (the model's embedding may be padded larger). */
  get vocabSize(): number {
    const n = this.#vocabSize ?? this.hf.get_vocab(true).size;
    this.#vocabSize = n;
    return n;
  }

  get bosTokenId(): number | null {
    return this.idOf(this.special.bos);
  }
  get eosTokenId(): number | null {
    return this.idOf(this.special.eos);
  }
  get padTokenId(): number | null {
    return this.idOf(this.special.pad);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** True for added tokens marked special (`<|im_end|>`, `<|vision_start|>`, …). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Renders messages with the checkpoint's chat template. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null)
      throw new ModelError(
        `${this.source}: the checkpoint has no chat template (looked in chat_template.jinja, chat_template.json and tokenizer_config.json)`,
      );
    try {
      this.compiled ??= new Template(this.chatTemplate);
    } catch (e) {
      throw new ModelError(`${this.source}: the chat template does not parse (${(e as Error).message})`, {
        cause: e,
      });
    }
    try {
      return this.compiled.render({
        ...specialTokenVariables(this.special),
        ...opts.variables,
        messages,
        add_generation_prompt: opts.addGenerationPrompt ?? false,
      });
    } catch (e) {
      throw new ModelError(`${this.source}: the chat template failed to render (${(e as Error).message})`, {
        cause: e,
      });
    }
  }

  /** An incremental detokeniser over this tokenizer, for streaming output. */
  streamDecoder(opts?: StreamDecoderOptions): StreamDecoder {
    return new StreamDecoder(this, opts);
  }

  private idOf(token: string | null): number | null {
    return token === null ? null : (this.hf.token_to_id(token) ?? null);
  }
}

function specialTokenVariables(s: SpecialTokens): JsonObject {
  return { bos_token: s.bos ?? '', eos_token: s.eos ?? '', pad_token: s.pad ?? '', unk_token: s.unk ?? '' };
}

/** `chat_template` in tokenizer_config.json: a string, or a list of named templates (take "default"). */
function templateFromConfig(config: JsonObject): string | null {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => isObject(x) && x.name === 'default') ?? t[0];
    if (isObject(named) && typeof named.template === 'string') return named.template;
  }
  return null;
}

async function templateFromFiles(dir: string): Promise<string | null> {
  for (const file of TEMPLATE_FILES) {
    const path = join(dir, file);
    if (!(await fileExists(path))) continue;
    if (file.endsWith('.jinja')) return readFile(path, 'utf8');
    const json = await readJsonFile(path);
    if (isObject(json) && typeof json.chat_template === 'string') return json.chat_template;
    throw new ModelError(`${path}: expected {"chat_template": "..."}`);
  }
  return null;
}
