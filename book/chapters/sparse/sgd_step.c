/* One step of SGD with Nesterov momentum and weight decay on one float32 tensor, in one pass over its
   memory (`book/chapters/sparse/fused_sgd.py` builds, loads and tests it).

   Bit for bit torch's foreach SGD on x86-64 with its AVX2 kernels, element by element:
       g1 = g + wd * p          torch._foreach_add(grads, params, alpha=wd)
       b  = b * momentum        torch._foreach_mul_(bufs, momentum)
       b  = b + g1              torch._foreach_add_(bufs, g1, alpha=1)
       g2 = g1 + momentum * b   torch._foreach_add_(g1, bufs, alpha=momentum)   (Nesterov)
       p  = p + (-lr) * g2      torch._foreach_add_(params, g2, alpha=-lr)
   where each "x + alpha * y" is one fused multiply-add (ATen's add with alpha: vec::fmadd, and its
   scalar tail contracted alike; measured), and b * momentum a plain product. torch makes five passes
   and a temporary per tensor; this makes one and leaves the gradient as it was. Built with
   -ffp-contract=off, so only the fmaf calls fuse. */
#include <math.h>
#include <stdint.h>

int sgd_nesterov_step(float *restrict p, const float *restrict g, float *restrict b, int64_t n, double lr,
                      double weight_decay, double momentum) {
    /* the scalars as ATen uses them: alpha and the factor cast to the tensor's float */
    const float minus_lr = (float)(-lr), wd = (float)weight_decay, mom = (float)momentum;
    for (int64_t i = 0; i < n; i++) {
        const float g1 = fmaf(p[i], wd, g[i]);
        const float buf = fmaf(g1, 1.0f, b[i] * mom);
        const float g2 = fmaf(buf, mom, g1);
        p[i] = fmaf(g2, minus_lr, p[i]);
        b[i] = buf;
    }
    return 0;
}
