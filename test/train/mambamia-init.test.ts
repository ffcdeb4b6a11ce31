/**
 * recipes/needle-mambamia.json from scratch: the model setup builds is the TSTAR of the recipe's config with the
 * tokenizer's vocabulary, initialised as tools/reference/needle_mambamia.py's modules are (the compressor's own
 * rules; PyTorch's defaults for the tower and the decoder), and the config it saves parses as TSTAR.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseTstarConfig } from '../../src/models/tstar/config.js';
import { fromScratch, stats } from './from-scratch.js';

test('the needle TSTAR-MambaMia from scratch: needle_mambamia.py’s initialisation', () =>
  fromScratch('needle-mambamia.json', async ({ model, tokenizer, files }, w) => {
    const c = parseTstarConfig(model.configJson);
    assert.equal(c.vocab_size, tokenizer.vocabSize);
    assert.equal(c.projector.mambamia_chunk_size, 8);
    assert.ok(c.projector.mambamia_bidirectional && c.projector.mambamia_gated_aggregation);
    assert.deepEqual(JSON.parse(files['generation_config.json']!).eos_token_id, [2]);
    const P = 'mm_projector.';
    const H = 128;
    // query_token = randn(H)/√H.
    const q = stats(await w(`${P}query_token`));
    assert.ok(Math.abs(q.std * Math.sqrt(H) - 1) < 0.25, `query_token std ${q.std}`);
    // Xavier-uniform projections (192 → 128 → 192), zero biases.
    for (const name of ['input_proj', 'output_proj']) {
      const s = stats(await w(`${P}${name}.weight`));
      const bound = Math.sqrt(6 / (192 + 128));
      assert.ok(
        s.max <= bound && s.min >= -bound && s.max > 0.9 * bound,
        `${name} in ±${bound}: ${s.min}..${s.max}`,
      );
      assert.deepEqual(stats(await w(`${P}${name}.bias`)).max, 0);
    }
    for (const l of [0, 1]) {
      const b = `${P}model.layers.${l}.`;
      // The pooling heads: PyTorch's default × 1e-3, zero biases.
      for (const fc of ['weight_fc', 'gate_fc']) {
        const s = stats(await w(`${b}${fc}.weight`));
        assert.ok(s.max <= 1e-3 / Math.sqrt(H) && s.max > 0, `${fc}: ${s.max}`);
        assert.equal(stats(await w(`${b}${fc}.bias`)).max, 0);
      }
      for (const dir of ['', '_b']) {
        const A = stats(await w(`${b}mixer.${dir ? 'A_b_log' : 'A_log'}`));
        assert.ok(A.min >= 0 && A.max <= Math.log(16), `A_log ${A.min}..${A.max}`);
        for (const x of await w(`${b}mixer.dt_bias${dir}`)) {
          const dt = Math.log1p(Math.exp(x));
          assert.ok(dt >= 1e-3 * 0.999 && dt <= 0.1 * 1.001, `dt ${dt}`);
        }
        for (const n of [`D${dir}`, `norm${dir}.weight`]) {
          const s = stats(await w(`${b}mixer.${n}`));
          assert.ok(s.min === 1 && s.max === 1, n);
        }
        // conv1d: PyTorch's default for a depthwise kernel of 4 (fan_in 4).
        const conv = stats(await w(`${b}mixer.conv1d${dir}.weight`));
        assert.ok(conv.max <= 0.5 && conv.max > 0.45, `conv1d ${conv.max}`);
      }
    }
    // PyTorch's defaults elsewhere: N(0, 1) embeddings, U(±1/√fan_in) linears, unit norms.
    const e = stats(await w('model.embed_tokens.weight'));
    assert.ok(Math.abs(e.std - 1) < 0.05, `embed std ${e.std}`);
    const qp = stats(await w('model.layers.0.self_attn.q_proj.weight'));
    assert.ok(qp.max <= 1 / Math.sqrt(192) && qp.max > 0.9 / Math.sqrt(192));
    assert.equal(stats(await w(`${P}model.norm_f.weight`)).min, 1);
  }));
