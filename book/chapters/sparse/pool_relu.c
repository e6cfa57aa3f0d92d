/* LeNet-5-Caffe's 2x2 stride-2 max-pooling and the ReLU after it, as one kernel, forward and backward, on
   channels-last float32 maps (`book/chapters/sparse/pooling.py` builds, loads and tests it).

   Bit for bit ATen's max_pool2d_with_indices followed by relu, and backward relu's threshold_backward
   followed by the pooling's scatter-add into zeros: the window's first maximum wins (a NaN wins over
   any number, a later NaN over an earlier one), ReLU is max(0, m) with m's sign kept at zero, and the
   gradient reaches the argmax as 0.0 + g (-0.0 becomes +0.0). Only compares, selects and that one
   add: the bits do not depend on the instruction set. Fused, the pair reads and writes each map once
   (ATen: five passes and a zero-fill), and the second pooling can hand the fully connected layer its
   input channel-major, so the flatten before it is a view. */
#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define MAX_C 64

static inline uint32_t bits_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* One output pixel: c_ channels of the 2x2 window p0 p1 / p2 p3. Vector loops of 8 and 4 channels and a
   scalar tail, all branch-free (masked stores are slow on some CPUs, branches on random data everywhere). */
static inline void window_forward(const float *p0, const float *p1, const float *p2, const float *p3, float *r,
                                  int32_t *k, int64_t c_) {
    int64_t c = 0;
#ifdef __AVX2__
    for (; c + 8 <= c_; c += 8) {
        const __m256 zero = _mm256_setzero_ps();
        __m256 m = _mm256_loadu_ps(p0 + c);
        __m256i i = _mm256_setzero_si256();
        const float *ps[3] = {p1, p2, p3};
        for (int j = 0; j < 3; j++) {
            const __m256 v = _mm256_loadu_ps(ps[j] + c);
            /* ATen: take v when v > max or v is NaN (a later NaN wins) */
            const __m256 t = _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            m = _mm256_blendv_ps(m, v, t);
            i = _mm256_blendv_epi8(i, _mm256_set1_epi32(j + 1), _mm256_castps_si256(t));
        }
        const __m256 dead = _mm256_cmp_ps(m, zero, _CMP_LE_OQ);   /* ReLU's backward passes nothing */
        _mm256_storeu_si256((__m256i *)(k + c), _mm256_blendv_epi8(i, _mm256_set1_epi32(4), _mm256_castps_si256(dead)));
        _mm256_storeu_ps(r + c, _mm256_max_ps(zero, m));   /* 0 > m ? 0 : m, as ATen's relu */
    }
    for (; c + 4 <= c_; c += 4) {
        const __m128 zero = _mm_setzero_ps();
        __m128 m = _mm_loadu_ps(p0 + c);
        __m128i i = _mm_setzero_si128();
        const float *ps[3] = {p1, p2, p3};
        for (int j = 0; j < 3; j++) {
            const __m128 v = _mm_loadu_ps(ps[j] + c);
            const __m128 t = _mm_or_ps(_mm_cmpgt_ps(v, m), _mm_cmpunord_ps(v, v));
            m = _mm_blendv_ps(m, v, t);
            i = _mm_blendv_epi8(i, _mm_set1_epi32(j + 1), _mm_castps_si128(t));
        }
        const __m128 dead = _mm_cmple_ps(m, zero);
        _mm_storeu_si128((__m128i *)(k + c), _mm_blendv_epi8(i, _mm_set1_epi32(4), _mm_castps_si128(dead)));
        _mm_storeu_ps(r + c, _mm_max_ps(zero, m));
    }
#endif
    for (; c < c_; c++) {
        float m = p0[c];
        int32_t i = 0;
        const float v[3] = {p1[c], p2[c], p3[c]};
        for (int j = 0; j < 3; j++) {
            const int t = (v[j] > m) | (v[j] != v[j]);
            m = t ? v[j] : m;
            i = t ? j + 1 : i;
        }
        k[c] = m <= 0.0f ? 4 : i;
        r[c] = 0.0f > m ? 0.0f : m;
    }
}

static inline void window_backward(const float *g, const int32_t *k, float *q0, float *q1, float *q2, float *q3,
                                   int64_t c_) {
    float *qs[4] = {q0, q1, q2, q3};
    int64_t c = 0;
#ifdef __AVX2__
    for (; c + 8 <= c_; c += 8) {
        /* ATen's backward adds the gradient into zeros: 0.0 + g (-0.0 becomes +0.0) */
        const __m256 v = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(g + c));
        const __m256i i = _mm256_loadu_si256((const __m256i *)(k + c));
        for (int j = 0; j < 4; j++)
            _mm256_storeu_ps(qs[j] + c, _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_cmpeq_epi32(i, _mm256_set1_epi32(j)))));
    }
    for (; c + 4 <= c_; c += 4) {
        const __m128 v = _mm_add_ps(_mm_setzero_ps(), _mm_loadu_ps(g + c));
        const __m128i i = _mm_loadu_si128((const __m128i *)(k + c));
        for (int j = 0; j < 4; j++)
            _mm_storeu_ps(qs[j] + c, _mm_and_ps(v, _mm_castsi128_ps(_mm_cmpeq_epi32(i, _mm_set1_epi32(j)))));
    }
#endif
    for (; c < c_; c++) {
        const uint32_t v = bits_of(0.0f + g[c]);
        for (int j = 0; j < 4; j++) qs[j][c] = float_of(v & (0u - (uint32_t)(k[c] == j)));
    }
}

/* in: [n][h][w][c]; out: [n][h/2][w/2][c], or [n][c][h/2][w/2] with channel_major_out; code: [n][h/2][w/2][c] */
int pool_relu_forward(const float *in, float *out, int32_t *code, int64_t n_, int64_t h_, int64_t w_, int64_t c_,
                      int channel_major_out) {
    if (c_ < 1 || c_ > MAX_C || h_ % 2 || w_ % 2) return -1;
    const int64_t oh_ = h_ / 2, ow_ = w_ / 2;
    float r[MAX_C];
    for (int64_t n = 0; n < n_; n++)
        for (int64_t oh = 0; oh < oh_; oh++)
            for (int64_t ow = 0; ow < ow_; ow++) {
                const float *p0 = in + ((n * h_ + 2 * oh) * w_ + 2 * ow) * c_, *p2 = p0 + w_ * c_;
                const int64_t o = ((n * oh_ + oh) * ow_ + ow) * c_;
                if (!channel_major_out) {
                    window_forward(p0, p0 + c_, p2, p2 + c_, out + o, code + o, c_);
                } else {
                    window_forward(p0, p0 + c_, p2, p2 + c_, r, code + o, c_);
                    for (int64_t c = 0; c < c_; c++) out[((n * c_ + c) * oh_ + oh) * ow_ + ow] = r[c];
                }
            }
    return 0;
}

/* gout: as the forward's out (channel_major_gout: [n][c][h/2][w/2]); gin: [n][h][w][c] */
int pool_relu_backward(const float *gout, const int32_t *code, float *gin, int64_t n_, int64_t h_, int64_t w_,
                       int64_t c_, int channel_major_gout) {
    if (c_ < 1 || c_ > MAX_C || h_ % 2 || w_ % 2) return -1;
    const int64_t oh_ = h_ / 2, ow_ = w_ / 2;
    float g[MAX_C];
    for (int64_t n = 0; n < n_; n++)
        for (int64_t oh = 0; oh < oh_; oh++)
            for (int64_t ow = 0; ow < ow_; ow++) {
                float *q0 = gin + ((n * h_ + 2 * oh) * w_ + 2 * ow) * c_, *q2 = q0 + w_ * c_;
                const int64_t o = ((n * oh_ + oh) * ow_ + ow) * c_;
                const float *src = gout + o;
                if (channel_major_gout) {
                    for (int64_t c = 0; c < c_; c++) g[c] = gout[((n * c_ + c) * oh_ + oh) * ow_ + ow];
                    src = g;
                }
                window_backward(src, code + o, q0, q0 + c_, q2, q2 + c_, c_);
            }
    return 0;
}
