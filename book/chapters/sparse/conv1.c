/* LeNet-5-Caffe's first convolution (1 -> 20 channels, 5x5, stride 1, no padding) forward and its
   weight and bias gradients, on float32 images, output channels-last (`book/chapters/sparse/conv1.py`
   builds, loads and tests it).

   Bit for bit oneDNN's AVX2 kernels for this layer at one thread (the book's numerics profile), whose
   reduction orders were measured:
     forward   out[n][oh][ow][oc] = (0 + x*w over kh, then kw, one fused multiply-add each) + bias
     weights   dw[oc][kh][kw]     = 0 + go*x over images, then rows, then columns, one fma each
     bias      db[oc]             = 0 + go over images, rows, columns
   Each chain keeps that order here; what is blocked and vectorized is across the chains (channels,
   taps), never along one. Built with -ffp-contract=off: only the fmaf/FMA calls fuse. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

#define OC 20
#define K 5

/* One image [h][w] into out [oh][ow][OC]; wt: the weights tap-major (the 20 channels of a tap side by side) */
static void image_forward(const float *img, const float wt[K * K][OC], const float *bias, float *out, int64_t h_,
                          int64_t w_) {
    const int64_t oh_ = h_ - K + 1, ow_ = w_ - K + 1;
    for (int64_t oh = 0; oh < oh_; oh++) {
            const float *rows = img + oh * w_;
            float *dst = out + oh * ow_ * OC;
            int64_t ow = 0;
#ifdef __AVX2__
            for (; ow + 3 <= ow_; ow += 3) {
                __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
                __m256 b1 = _mm256_setzero_ps(), c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
                __m128 a2 = _mm_setzero_ps(), b2 = _mm_setzero_ps(), c2 = _mm_setzero_ps();
                for (int kh = 0; kh < K; kh++) {
                    const float *r = rows + kh * w_ + ow;
                    for (int kw = 0; kw < K; kw++) {
                        const float *wv = wt[kh * K + kw];
                        const __m256 w0 = _mm256_loadu_ps(wv), w1 = _mm256_loadu_ps(wv + 8);
                        const __m128 w2 = _mm_loadu_ps(wv + 16);
                        const __m256 xa = _mm256_broadcast_ss(r + kw), xb = _mm256_broadcast_ss(r + kw + 1),
                                     xc = _mm256_broadcast_ss(r + kw + 2);
                        a0 = _mm256_fmadd_ps(xa, w0, a0); a1 = _mm256_fmadd_ps(xa, w1, a1);
                        a2 = _mm_fmadd_ps(_mm256_castps256_ps128(xa), w2, a2);
                        b0 = _mm256_fmadd_ps(xb, w0, b0); b1 = _mm256_fmadd_ps(xb, w1, b1);
                        b2 = _mm_fmadd_ps(_mm256_castps256_ps128(xb), w2, b2);
                        c0 = _mm256_fmadd_ps(xc, w0, c0); c1 = _mm256_fmadd_ps(xc, w1, c1);
                        c2 = _mm_fmadd_ps(_mm256_castps256_ps128(xc), w2, c2);
                    }
                }
                const __m256 q0 = _mm256_loadu_ps(bias), q1 = _mm256_loadu_ps(bias + 8);
                const __m128 q2 = _mm_loadu_ps(bias + 16);
                float *o = dst + ow * OC;
                _mm256_storeu_ps(o, _mm256_add_ps(a0, q0)); _mm256_storeu_ps(o + 8, _mm256_add_ps(a1, q1));
                _mm_storeu_ps(o + 16, _mm_add_ps(a2, q2));
                _mm256_storeu_ps(o + OC, _mm256_add_ps(b0, q0)); _mm256_storeu_ps(o + OC + 8, _mm256_add_ps(b1, q1));
                _mm_storeu_ps(o + OC + 16, _mm_add_ps(b2, q2));
                _mm256_storeu_ps(o + 2 * OC, _mm256_add_ps(c0, q0));
                _mm256_storeu_ps(o + 2 * OC + 8, _mm256_add_ps(c1, q1));
                _mm_storeu_ps(o + 2 * OC + 16, _mm_add_ps(c2, q2));
            }
#endif
            for (; ow < ow_; ow++)
                for (int oc = 0; oc < OC; oc++) {
                    float acc = 0.0f;
                    for (int kh = 0; kh < K; kh++)
                        for (int kw = 0; kw < K; kw++) acc = fmaf(rows[kh * w_ + ow + kw], wt[kh * K + kw][oc], acc);
                    dst[ow * OC + oc] = acc + bias[oc];
                }
        }
}

static void tap_major(const float *weight, float wt[K * K][OC]) {
    for (int oc = 0; oc < OC; oc++)
        for (int t = 0; t < K * K; t++) wt[t][oc] = weight[oc * K * K + t];
}

/* x: [n][h][w] (one channel); weight: [OC][K][K]; out: [n][oh][ow][OC] */
int conv1_forward(const float *x, const float *weight, const float *bias, float *out, int64_t n_, int64_t h_,
                  int64_t w_) {
    if (h_ < K || w_ < K) return -1;
    float wt[K * K][OC];
    tap_major(weight, wt);
    for (int64_t n = 0; n < n_; n++) image_forward(x + n * h_ * w_, wt, bias, out + n * (h_ - K + 1) * (w_ - K + 1) * OC, h_, w_);
    return 0;
}

/* One image's share of the chains: img [h][w], g its output's gradient [oh][ow][OC] */
static void image_backward(const float *img, const float *g, float acc[K][K][OC], float bacc[OC], int64_t h_,
                           int64_t w_) {
    const int64_t oh_ = h_ - K + 1, ow_ = w_ - K + 1;
        for (int kh = 0; kh < K; kh++) {
#ifdef __AVX2__
        /* channels 0-15: the five taps of this row in 10 registers */
        __m256 s[K][2];
        for (int kw = 0; kw < K; kw++) {
            s[kw][0] = _mm256_loadu_ps(acc[kh][kw]);
            s[kw][1] = _mm256_loadu_ps(acc[kh][kw] + 8);
        }
        for (int64_t oh = 0; oh < oh_; oh++) {
            const float *r = img + (oh + kh) * w_;
            const float *gr = g + oh * ow_ * OC;
            for (int64_t ow = 0; ow < ow_; ow++) {
                const __m256 g0 = _mm256_loadu_ps(gr + ow * OC), g1 = _mm256_loadu_ps(gr + ow * OC + 8);
                for (int kw = 0; kw < K; kw++) {
                    const __m256 xv = _mm256_broadcast_ss(r + ow + kw);
                    s[kw][0] = _mm256_fmadd_ps(g0, xv, s[kw][0]);
                    s[kw][1] = _mm256_fmadd_ps(g1, xv, s[kw][1]);
                }
            }
        }
        for (int kw = 0; kw < K; kw++) {
            _mm256_storeu_ps(acc[kh][kw], s[kw][0]);
            _mm256_storeu_ps(acc[kh][kw] + 8, s[kw][1]);
        }
        /* channels 16-19 */
        __m128 t[K];
        for (int kw = 0; kw < K; kw++) t[kw] = _mm_loadu_ps(acc[kh][kw] + 16);
        for (int64_t oh = 0; oh < oh_; oh++) {
            const float *r = img + (oh + kh) * w_;
            const float *gr = g + oh * ow_ * OC + 16;
            for (int64_t ow = 0; ow < ow_; ow++) {
                const __m128 g2 = _mm_loadu_ps(gr + ow * OC);
                for (int kw = 0; kw < K; kw++) t[kw] = _mm_fmadd_ps(g2, _mm_broadcast_ss(r + ow + kw), t[kw]);
            }
        }
        for (int kw = 0; kw < K; kw++) _mm_storeu_ps(acc[kh][kw] + 16, t[kw]);
#else
        for (int64_t oh = 0; oh < oh_; oh++) {
            const float *r = img + (oh + kh) * w_;
            const float *gr = g + oh * ow_ * OC;
            for (int64_t ow = 0; ow < ow_; ow++)
                for (int kw = 0; kw < K; kw++)
                    for (int oc = 0; oc < OC; oc++)
                        acc[kh][kw][oc] = fmaf(gr[ow * OC + oc], r[ow + kw], acc[kh][kw][oc]);
        }
#endif
    }
    for (int64_t p = 0; p < oh_ * ow_; p++)
        for (int oc = 0; oc < OC; oc++) bacc[oc] += g[p * OC + oc];
}

static void store_gradients(float acc[K][K][OC], float bacc[OC], float *grad_weight, float *grad_bias) {
    for (int oc = 0; oc < OC; oc++) {
        for (int kh = 0; kh < K; kh++)
            for (int kw = 0; kw < K; kw++) grad_weight[(oc * K + kh) * K + kw] = acc[kh][kw][oc];
        grad_bias[oc] = bacc[oc];
    }
}

/* x: [n][h][w]; grad: [n][oh][ow][OC]; grad_weight: [OC][K][K]; grad_bias: [OC] */
int conv1_backward(const float *x, const float *grad, float *grad_weight, float *grad_bias, int64_t n_, int64_t h_,
                   int64_t w_) {
    if (h_ < K || w_ < K) return -1;
    float acc[K][K][OC];   /* the chains, carried from image to image */
    float bacc[OC];
    memset(acc, 0, sizeof acc);
    memset(bacc, 0, sizeof bacc);
    for (int64_t n = 0; n < n_; n++)
        image_backward(x + n * h_ * w_, grad + n * (h_ - K + 1) * (w_ - K + 1) * OC, acc, bacc, h_, w_);
    store_gradients(acc, bacc, grad_weight, grad_bias);
    return 0;
}

/* The first conv with the 2x2 max-pooling and ReLU after it (pool_relu.c's windows), one image at a
   time: the conv's output and its gradient live only in a scratch image that stays in cache, never in
   memory (4.6 MB each way a step at LeNet-5's shapes). The same bits as the three layers one by one. */
#include "pool_relu.c"

#define MAX_SIDE 64   /* the conv's output side, at most */

/* x: [n][h][w]; out: [n][oh/2][ow/2][OC]; code: as pool_relu_forward's */
int conv1_pool_relu_forward(const float *x, const float *weight, const float *bias, float *out, int32_t *code,
                            int64_t n_, int64_t h_, int64_t w_) {
    const int64_t oh_ = h_ - K + 1, ow_ = w_ - K + 1;
    if (h_ < K || w_ < K || oh_ % 2 || ow_ % 2 || oh_ > MAX_SIDE || ow_ > MAX_SIDE) return -1;
    static _Thread_local float scratch[MAX_SIDE * MAX_SIDE * OC];
    float wt[K * K][OC];
    tap_major(weight, wt);
    const int64_t ph_ = oh_ / 2, pw_ = ow_ / 2;
    for (int64_t n = 0; n < n_; n++) {
        image_forward(x + n * h_ * w_, wt, bias, scratch, h_, w_);
        for (int64_t ph = 0; ph < ph_; ph++)
            for (int64_t pw = 0; pw < pw_; pw++) {
                const float *p0 = scratch + ((2 * ph) * ow_ + 2 * pw) * OC, *p2 = p0 + ow_ * OC;
                const int64_t o = ((n * ph_ + ph) * pw_ + pw) * OC;
                window_forward(p0, p0 + OC, p2, p2 + OC, out + o, code + o, OC);
            }
    }
    return 0;
}

/* grad: the pooled output's gradient [n][oh/2][ow/2][OC]; grad_weight: [OC][K][K]; grad_bias: [OC] */
int conv1_pool_relu_backward(const float *x, const float *grad, const int32_t *code, float *grad_weight,
                             float *grad_bias, int64_t n_, int64_t h_, int64_t w_) {
    const int64_t oh_ = h_ - K + 1, ow_ = w_ - K + 1;
    if (h_ < K || w_ < K || oh_ % 2 || ow_ % 2 || oh_ > MAX_SIDE || ow_ > MAX_SIDE) return -1;
    static _Thread_local float scratch[MAX_SIDE * MAX_SIDE * OC];
    float acc[K][K][OC];
    float bacc[OC];
    memset(acc, 0, sizeof acc);
    memset(bacc, 0, sizeof bacc);
    const int64_t ph_ = oh_ / 2, pw_ = ow_ / 2;
    for (int64_t n = 0; n < n_; n++) {
        for (int64_t ph = 0; ph < ph_; ph++)
            for (int64_t pw = 0; pw < pw_; pw++) {
                float *q0 = scratch + ((2 * ph) * ow_ + 2 * pw) * OC, *q2 = q0 + ow_ * OC;
                const int64_t o = ((n * ph_ + ph) * pw_ + pw) * OC;
                window_backward(grad + o, code + o, q0, q0 + OC, q2, q2 + OC, OC);
            }
        image_backward(x + n * h_ * w_, scratch, acc, bacc, h_, w_);
    }
    store_gradients(acc, bacc, grad_weight, grad_bias);
    return 0;
}
