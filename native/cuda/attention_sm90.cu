// Hopper flash-attention forward (FlashAttention-3 style), compiled for sm_90a only.
//
// A CTA owns 128 rows — (query, head-in-group) pairs of one kv head (GQA packing, as the mma.sync kernel in
// attention.cu) — and walks the keys those rows may see in tiles of 128. Warps 0–7 are two consumer
// warpgroups of 64 rows each; warp 8 is the producer: one lane issues TMA loads of K and V tiles into a ring
// of shared-memory stages (128-byte swizzle, completion on "full" mbarriers) and waits on "empty" mbarriers
// before refilling a stage. Each consumer warpgroup keeps its Q rows in shared memory and runs
//   S = Q·Kᵀ        wgmma m64n128k16, both operands from shared memory (K-major descriptors)
//   online softmax  in registers, f32, exp2 domain (row max over the quad with two shuffles)
//   O += P·V        wgmma m64nDk16 with P from registers (the S accumulator layout is the A fragment
//                   layout) and V MN-major from shared memory (transposed by the descriptor)
// with O (64×D f32) in registers. The two consumer warpgroups run independently, so one's softmax overlaps
// the other's tensor-core work. Head dims 64/80/96/128: Q, K and V tiles are stored as 64-column blocks of
// 128-byte rows; a dim that is not a multiple of 64 leaves the last block partly unused (TMA zero-fills the
// columns beyond d, which no MMA reads).
#include "attention_sm90.h"

#include <cuda.h>  // CUtensorMap and its enums only: the encoder is fetched from the driver at run time

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "attention_rule.cuh"
#include "mma_util.cuh"
#include "wgmma_util.cuh"

namespace {

constexpr int kBr = 128;                   // rows per CTA (two consumer warpgroups of 64)
constexpr int kBc = 128;                   // keys per tile
constexpr int kConsumers = 256;             // threads of the two consumer warpgroups
constexpr int kThreads = kConsumers + 128;  // + the producer warpgroup (one thread issues the loads)
constexpr int kBlockBytes = 128 * 128;     // one 64-column block of 128 rows (Q) or 128 keys (K/V): 16 KiB

template <int D>
__host__ __device__ constexpr int col_blocks() {
  return (D + 63) / 64;
}
template <int D, int NS>
constexpr size_t sm90_smem_bytes() {
  // 1 KiB of slack to align the tiles to the 1024-byte swizzle atom, Q, NS stages of K and V, 4·NS barriers.
  return 1024 + static_cast<size_t>(col_blocks<D>()) * kBlockBytes * (1 + 2 * NS) + 4 * NS * sizeof(uint64_t);
}

struct Sm90Params {
  const __nv_bfloat16 *q;
  __nv_bfloat16 *out;
  RowRule rule;
  const int2 *tiles;  // [rowStart, rowEnd) per CTA (block-diagonal), or null: uniform tiles, heaviest first
  int sq, hq, hkv, G, rows;
  float scaleLog2;
};

template <int D, int NS>
__global__ void __launch_bounds__(kThreads, 1)
    attn_fwd_sm90(const __grid_constant__ CUtensorMap tmK, const __grid_constant__ CUtensorMap tmV, Sm90Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  constexpr int CB = col_blocks<D>(), KSTEPS = D / 16;
  constexpr unsigned kTileBytes = CB * kBlockBytes;
  extern __shared__ unsigned char smemRaw[];
  const uint32_t base = (smem_u32(smemRaw) + 1023) & ~1023u;
  const uint32_t sQ = base, sK = sQ + kTileBytes, sV = sK + NS * kTileBytes;
  // Barriers, 8 bytes each per stage: K landed, V landed, K slot free, V slot free.
  const uint32_t fullK = sV + NS * kTileBytes, fullV = fullK + 8 * NS, emptyK = fullV + 8 * NS,
                 emptyV = emptyK + 8 * NS;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int b = blockIdx.y / p.hkv, hk = blockIdx.y % p.hkv;
  int rowStart, rowEnd;
  if (p.tiles) {
    const int2 t = p.tiles[blockIdx.x];
    rowStart = t.x;
    rowEnd = t.y;
  } else {
    rowStart = (gridDim.x - 1 - blockIdx.x) * kBr;  // causal: the longest key ranges start first
    rowEnd = min(rowStart + kBr, p.rows);
  }
  int loFirst, hiFirst, loLast, hiLast;
  p.rule.range(rowStart / p.G, loFirst, hiFirst);
  p.rule.range((rowEnd - 1) / p.G, loLast, hiLast);
  const int kBeg = loFirst, kEnd = hiLast;
  const int nT = kEnd > kBeg ? (kEnd - kBeg + kBc - 1) / kBc : 0;

  if (tid == 0) {
    for (int s = 0; s < NS; ++s) {
      mbar_init(fullK + 8 * s, 1);
      mbar_init(fullV + 8 * s, 1);
      mbar_init(emptyK + 8 * s, kConsumers / 32);  // lane 0 of every consumer warp
      mbar_init(emptyV + 8 * s, kConsumers / 32);
    }
    mbar_fence_init();
  }
  __syncthreads();

  if (warp >= kConsumers / 32) {
    // Producer: K and V rings with their own barriers, so a K slot is refilled as soon as S = Q·Kᵀ has read
    // it and S can start before V has landed. It gives its registers to the consumers, which hold S, P and O.
    setmaxnreg_dec<40>();
    if (warp == kConsumers / 32 && lane == 0)
      for (int t = 0; t < nT; ++t) {
        const int s = t % NS, j0 = kBeg + t * kBc;
        const unsigned freed = (t / NS - 1) & 1;
        if (t >= NS) mbar_wait(emptyK + 8 * s, freed);
        mbar_arrive_expect_tx(fullK + 8 * s, kTileBytes);
        for (int cb = 0; cb < CB; ++cb)
          tma_load_4d(sK + s * kTileBytes + cb * kBlockBytes, &tmK, fullK + 8 * s, 64 * cb, hk, j0, b);
        if (t >= NS) mbar_wait(emptyV + 8 * s, freed);
        mbar_arrive_expect_tx(fullV + 8 * s, kTileBytes);
        for (int cb = 0; cb < CB; ++cb)
          tma_load_4d(sV + s * kTileBytes + cb * kBlockBytes, &tmV, fullV + 8 * s, 64 * cb, hk, j0, b);
      }
    return;
  }

  // ---- consumers ----
  setmaxnreg_inc<232>();  // (65536 − 128·40) / 256, rounded down to a multiple of 8
  const int wg = warp >> 2, wtid = tid & 127, g = lane >> 2, t4 = lane & 3;
  const int wgRow = rowStart + 64 * wg;
  if (wgRow >= rowEnd) {
    // No rows here (a short last tile): only release the slots, once each tile has landed, so the producer
    // can go on and every barrier phase gets its arrivals in order.
    for (int t = 0; t < nT; ++t) {
      mbar_wait(fullK + 8 * (t % NS), (t / NS) & 1);
      mbar_wait(fullV + 8 * (t % NS), (t / NS) & 1);
      if (lane == 0) {
        mbar_arrive(emptyK + 8 * (t % NS));
        mbar_arrive(emptyV + 8 * (t % NS));
      }
    }
    return;
  }

  // Q rows of this warpgroup → shared memory in the 128-byte-swizzled K-major layout wgmma reads: row r of a
  // 64-column block holds its 16-byte chunk c at chunk position c ^ (r % 8) (what TMA writes for K and V).
  constexpr int CH = D / 8;
  for (int c = wtid; c < 64 * CH; c += 128) {
    const int r = c / CH, ch = c % CH, row = wgRow + r;
    const bool ok = row < rowEnd;
    const __nv_bfloat16 *src =
        ok ? p.q + ((static_cast<size_t>(b) * p.sq + row / p.G) * p.hq + hk * p.G + row % p.G) * D + 8 * ch : p.q;
    const uint32_t dst = sQ + (ch / 8) * kBlockBytes + (64 * wg + r) * 128 + (((ch % 8) ^ (r & 7)) << 4);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
  }
  cp_async_commit();
  cp_async_wait<0>();
  fence_proxy_async();  // cp.async wrote through the generic proxy; wgmma reads through the async one
  named_barrier(1 + wg, 128);

  // The two rows this thread accumulates and the key range each may see; a warp-wide test then skips the
  // per-element range checks on interior tiles.
  const int wRow0 = wgRow + 16 * (warp & 3);
  int lo[2] = {0, 0}, hi[2] = {0, 0}, myRow[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    myRow[h] = wRow0 + g + 8 * h;
    if (myRow[h] < rowEnd) p.rule.range(myRow[h] / p.G, lo[h], hi[h]);
  }
  int wLoMax = INT_MAX, wHiMin = 0, unused;  // a warp without valid rows always takes the masked path
  if (wRow0 < rowEnd) {
    p.rule.range(wRow0 / p.G, unused, wHiMin);
    p.rule.range(min(wRow0 + 15, rowEnd - 1) / p.G, wLoMax, unused);
  }

  float o[D / 2], acc[64], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f}, alpha[2];
  uint32_t pa[kBc / 16][4];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) o[i] = 0.f;
  const uint32_t sQwg = sQ + 64 * wg * 128;

  // S = Q·K_tᵀ into acc (issued, not waited for).
  auto issue_s = [&](int t) {
    const int s = t % NS;
    mbar_wait(fullK + 8 * s, (t / NS) & 1);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      // k-step kk reads 16 columns: block kk / 4, 32 bytes in (the swizzle is applied to the address).
      const uint32_t off = (kk / 4) * kBlockBytes + (kk % 4) * 32;
      wgmma_ss_m64n128(acc, wgmma_desc_sw128(sQwg + off, 16, 1024),
                       wgmma_desc_sw128(sK + s * kTileBytes + off, 16, 1024), kk);
    }
    wgmma_commit();
    wgmma_fence_operands(acc);
  };
  // O += P·V_t (issued, not waited for).
  auto issue_pv = [&](int t) {
    const int s = t % NS;
    mbar_wait(fullV + 8 * s, (t / NS) & 1);
    wgmma_fence();
#pragma unroll
    for (int kb = 0; kb < kBc / 16; ++kb) {
      // 16 keys = two 8-row groups (SBO 1 KiB); the next 64 columns of V are the next block (LBO).
      const uint64_t dv = wgmma_desc_sw128(sV + s * kTileBytes + kb * 16 * 128, kBlockBytes, 1024);
      if constexpr (D == 64) wgmma_rs_m64n64(o, pa[kb], dv);
      else if constexpr (D == 80) wgmma_rs_m64n80(o, pa[kb], dv);
      else if constexpr (D == 96) wgmma_rs_m64n96(o, pa[kb], dv);
      else wgmma_rs_m64n128(o, pa[kb], dv);
    }
    wgmma_commit();
    wgmma_fence_operands(o);
  };
  auto release = [&](uint32_t bar, int t) {
    __syncwarp();
    if (lane == 0) mbar_arrive(bar + 8 * (t % NS));
  };
  // Online softmax of tile t in place: acc becomes P (f32), m/l advance, alpha rescales the old O.
  auto softmax = [&](int t) {
    const int j0 = kBeg + t * kBc;
    if (!(j0 >= wLoMax && j0 + kBc <= wHiMin)) {
#pragma unroll
      for (int i = 0; i < 64; ++i) {
        const int h = (i >> 1) & 1, j = j0 + 8 * (i >> 2) + 2 * t4 + (i & 1);
        if (j < lo[h] || j >= hi[h]) acc[i] = -INFINITY;
      }
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 16; ++c) mx = fmaxf(mx, fmaxf(acc[4 * c + 2 * h], acc[4 * c + 2 * h + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mnew = fmaxf(m[h], mx * p.scaleLog2);
      const float muse = mnew == -INFINITY ? 0.f : mnew;  // a row with nothing visible yet stays at zero
      alpha[h] = fast_exp2(m[h] - muse);
      m[h] = mnew;
      float rs = 0.f;
#pragma unroll
      for (int c = 0; c < 16; ++c)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float &x = acc[4 * c + 2 * h + e];
          x = fast_exp2(fmaf(x, p.scaleLog2, -muse));
          rs += x;
        }
      l[h] = l[h] * alpha[h] + rs;  // per-thread partial; the quad is summed once at the end
    }
  };
  // P in bf16 (for keys 16kb..16kb+15 the A fragment is acc[8kb .. 8kb+7] in pairs) and O rescaled.
  auto pack_and_rescale = [&]() {
#pragma unroll
    for (int kb = 0; kb < kBc / 16; ++kb)
#pragma unroll
      for (int r = 0; r < 4; ++r) pa[kb][r] = pack_bf16x2(acc[8 * kb + 2 * r], acc[8 * kb + 2 * r + 1]);
#pragma unroll
    for (int c = 0; c < D / 8; ++c) {
      o[4 * c] *= alpha[0];
      o[4 * c + 1] *= alpha[0];
      o[4 * c + 2] *= alpha[1];
      o[4 * c + 3] *= alpha[1];
    }
  };

  // Ping-pong: the two consumer warpgroups take turns to issue their MMAs (named barriers 3 and 4, 256
  // threads: one side waits, the other arrives), so one's softmax runs while the other's MMAs occupy the
  // tensor cores. Warpgroup 1 lets warpgroup 0 go first and skips its last hand-over, so every barrier phase
  // gets exactly its 256 threads. A CTA whose second warpgroup has no rows (it returned above) runs alone.
  // On an H200 it made the vision kernel (d 80) 5% faster and causal d 128 0.5% slower: d 128 runs without.
  const bool pingpong = D < 128 && rowStart + 64 < rowEnd && nT > 0;
  if (pingpong && wg == 1) named_barrier_arrive(3, 256);
  int turns = 0;
  auto my_turn = [&] {
    if (pingpong) named_barrier(3 + wg, 256);
  };
  auto hand_over = [&] {
    if (pingpong && !(wg == 1 && ++turns == nT + 1)) named_barrier_arrive(4 - wg, 256);
  };

  // S of the next tile and the softmax of it run while the tensor cores do O += P·V of this one (measured on
  // an H200: ~630 TFLOP/s causal d128 against ~580 without the overlap; a third K/V stage gained nothing).
  if (nT > 0) {
    my_turn();
    issue_s(0);
    hand_over();
    wgmma_wait<0>();
    wgmma_fence_operands(acc);
    release(emptyK, 0);
    softmax(0);
    pack_and_rescale();
  }
  for (int t = 0; t + 1 < nT; ++t) {
    my_turn();
    issue_s(t + 1);
    issue_pv(t);
    hand_over();
    wgmma_wait<1>();  // groups complete in order: S_{t+1} is done, P·V_t may still run
    wgmma_fence_operands(acc);
    release(emptyK, t + 1);
    softmax(t + 1);
    wgmma_wait<0>();
    wgmma_fence_operands(o);
    release(emptyV, t);
    pack_and_rescale();
  }
  if (nT > 0) {
    my_turn();
    issue_pv(nT - 1);
    hand_over();
    wgmma_wait<0>();
    wgmma_fence_operands(o);
    release(emptyV, nT - 1);
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 1);
    l[h] += __shfl_xor_sync(0xffffffffu, l[h], 2);
    if (myRow[h] >= rowEnd) continue;
    const int row = myRow[h];
    const float inv = l[h] > 0.f ? 1.f / l[h] : 0.f;
    __nv_bfloat16 *dst =
        p.out + ((static_cast<size_t>(b) * p.sq + row / p.G) * p.hq + hk * p.G + row % p.G) * D + 2 * t4;
#pragma unroll
    for (int c = 0; c < D / 8; ++c) store_bf16x2(dst + 8 * c, o[4 * c + 2 * h] * inv, o[4 * c + 2 * h + 1] * inv);
  }
#endif
}

using EncodeTiled = CUresult (*)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                 const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                 CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

/** cuTensorMapEncodeTiled from the driver (the addon links only the static runtime), or null. */
EncodeTiled encoder() {
  static const EncodeTiled fn = [] {
    void *f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<EncodeTiled>(nullptr);
    }
    return reinterpret_cast<EncodeTiled>(f);
  }();
  return fn;
}

/**
 * K or V [batch, skv, hkv, d] as a 4-d tensor (d, hkv, kvLength, batch) read in boxes of 64 columns × 1 head
 * × 128 keys with the 128-byte swizzle. Keys at and beyond kvLength are outside the tensor, so TMA writes
 * zeros for them instead of reading whatever a pre-allocated cache holds there.
 */
CUtensorMap kv_tensor_map(const void *p, const AttentionDims &a) {
  CUtensorMap m;
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(a.d), static_cast<cuuint64_t>(a.hkv),
                              static_cast<cuuint64_t>(a.kvLength), static_cast<cuuint64_t>(a.batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(a.d) * 2, static_cast<cuuint64_t>(a.hkv) * a.d * 2,
                                 static_cast<cuuint64_t>(a.skv) * a.hkv * a.d * 2};
  const cuuint32_t box[4] = {64, 1, kBc, 1}, elementStrides[4] = {1, 1, 1, 1};
  const CUresult r = encoder()(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, const_cast<void *>(p), dims, strides, box,
                               elementStrides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                               CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) throw CudaError("attention: cuTensorMapEncodeTiled failed (error " + std::to_string(r) + ")");
  return m;
}

constexpr int kStages = 2;  // K/V tiles in flight

template <int D>
void launch(const CUtensorMap &tk, const CUtensorMap &tv, const Sm90Params &p, int ctas, int heads,
            cudaStream_t stream) {
  constexpr size_t smem = sm90_smem_bytes<D, kStages>();
  allow_smem_once<attn_fwd_sm90<D, kStages>>(smem);
  attn_fwd_sm90<D, kStages><<<dim3(ctas, heads), kThreads, smem, stream>>>(tk, tv, p);
  LS_CHECK_LAUNCH();
}

// On for every sm_90 device since it passed kernels_test and test:cuda on an H200; LONGSHOT_ATTN_SM90=0 opts out
// (back to the mma.sync kernel of attention.cu).
constexpr bool kSm90ByDefault = true;

/** Writes 1 only where the sm_90a image runs (a build for plain sm_90 would run the empty stub instead). */
__global__ void sm90a_image_probe(int *ok) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  *ok = 1;
#else
  (void)ok;
#endif
}

/** An sm_90 device running this file's sm_90a code, with the TMA encoder available; checked once. */
bool device_is_sm90() {
  static const bool yes = [] {
    const char *env = std::getenv("LONGSHOT_ATTN_SM90");
    if (!(env ? std::string(env) == "1" : kSm90ByDefault)) return false;
    int dev = 0, major = 0, minor = 0;
    LS_CUDA_CHECK(cudaGetDevice(&dev));
    LS_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    LS_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    if (major != 9 || minor != 0 || encoder() == nullptr) return false;
    int *flag = nullptr, ok = 0;
    LS_CUDA_CHECK(cudaMalloc(&flag, sizeof(int)));
    LS_CUDA_CHECK(cudaMemset(flag, 0, sizeof(int)));
    sm90a_image_probe<<<1, 1>>>(flag);
    const bool launched = cudaGetLastError() == cudaSuccess;  // no image for this device: not an error here
    if (launched) LS_CUDA_CHECK(cudaMemcpy(&ok, flag, sizeof(int), cudaMemcpyDeviceToHost));
    LS_CUDA_CHECK(cudaFree(flag));
    return launched && ok == 1;
  }();
  return yes;
}

/** Upper bound of the CTA count of block-diagonal attention: row tiles plus one partial tile per piece. */
size_t max_segment_tiles(const AttentionDims &a) {
  return ceil_div<size_t>(static_cast<size_t>(a.sq) * (a.hq / a.hkv), kBr) + a.numSegments + 2;
}

}  // namespace

bool attention_sm90_supported(const AttentionDims &a, DT dt) {
  return dt == DT::BF16 && a.d == a.dv && (a.d == 64 || a.d == 80 || a.d == 96 || a.d == 128) && !a.weights &&
         a.maskBatch == 0 && a.kvLength > 0 && a.scale > 0.f && a.hkv > 0 && static_cast<long long>(a.sq) * (a.hq / a.hkv) >= kBr &&
         device_is_sm90();
}

size_t attention_sm90_workspace_bytes(const AttentionDims &a) {
  return a.numSegments > 0 ? align256(sizeof(int2) * max_segment_tiles(a)) : 0;
}

void attention_sm90(void *out, const void *q, const void *k, const void *v, const int32_t *segmentsHost,
                    const int *segDevice, const AttentionDims &a, void *workspace, cudaStream_t stream) {
  Sm90Params p{};
  p.q = static_cast<const __nv_bfloat16 *>(q);
  p.out = static_cast<__nv_bfloat16 *>(out);
  p.rule = RowRule{a.kvLength, a.causal ? 1 : 0, a.queryOffset, a.numSegments, segDevice};
  p.sq = a.sq;
  p.hq = a.hq;
  p.hkv = a.hkv;
  p.G = a.hq / a.hkv;
  p.rows = a.sq * p.G;
  p.scaleLog2 = a.scale * kLog2e;
  int ctas = ceil_div(p.rows, kBr);
  if (a.numSegments > 0) {
    // One CTA never spans two segments: its keys are then those of one segment, and a 1196-token segment
    // costs 10 key tiles instead of the ~20 of a CTA straddling a boundary. Pieces outside [seg0, segN)
    // (none for well-formed boundaries) are tiled too, so every row is covered.
    std::vector<int> cuts = {0, a.sq};
    for (int s = 0; s <= a.numSegments; ++s) cuts.push_back(std::clamp(segmentsHost[s], 0, a.sq));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int2> tiles;
    for (size_t i = 0; i + 1 < cuts.size(); ++i)
      for (int r = cuts[i] * p.G; r < cuts[i + 1] * p.G; r += kBr)
        tiles.push_back(make_int2(r, std::min(r + kBr, cuts[i + 1] * p.G)));
    LS_REQUIRE(tiles.size() <= max_segment_tiles(a), "attention: segment tile table overflow");
    ctas = static_cast<int>(tiles.size());
    if (ctas == 0) return;
    p.tiles = static_cast<const int2 *>(workspace);
    LS_CUDA_CHECK(cudaMemcpyAsync(workspace, tiles.data(), sizeof(int2) * tiles.size(), cudaMemcpyHostToDevice, stream));
  }
  const CUtensorMap tk = kv_tensor_map(k, a), tv = kv_tensor_map(v, a);
  const int heads = a.batch * a.hkv;
  switch (a.d) {
    case 64: launch<64>(tk, tv, p, ctas, heads, stream); break;
    case 80: launch<80>(tk, tv, p, ctas, heads, stream); break;
    case 96: launch<96>(tk, tv, p, ctas, heads, stream); break;
    default: launch<128>(tk, tv, p, ctas, heads, stream); break;
  }
}
