"""Which 8-bit map for blockwise optimizer state: a measurement, run by hand (plain numpy).

    python benchmarks/int8_maps.py

Adam's moments after 300 steps on heavy-tailed gradients (Student t, 3 degrees of freedom,
the scale varying a thousandfold between blocks and tenfold inside them) are quantized in
blocks of 256 with one absmax scale per block, by three maps:

- ``linear``: ``round(127 x)`` for m, ``round(255 x)`` for v (x = value / block absmax);
- ``companded``: m through ``2x / (1 + |x|)`` (a softsign: more codes near 0), v through
  ``sqrt`` (FlashOptim's choice); both decode with arithmetic only, so a kernel vectorises;
- ``signed sqrt``: m through ``sign(x) sqrt(|x|)``, v through ``sqrt``: arithmetic too,
  with more codes still near 0;
- ``dynamic``: bitsandbytes' dynamic map (``create_dynamic_map``, 8 bits, signed for m and
  unsigned for v), nearest code by lookup: a table, a gather to decode, a search to encode.

It prints, per map, the relative RMS error of m and v and of Adam's direction
``u = m_hat / (sqrt(v_hat) + eps)`` against float32, and the share of elements whose v
decodes to 0 while m does not (the case that can make a step explode).
"""

from __future__ import annotations

import numpy as np

BLOCK = 256


def dynamic_map(signed: bool, max_exponent_bits: int = 7, total_bits: int = 8) -> np.ndarray:
    """bitsandbytes' create_dynamic_map (Dettmers et al. 2022), in numpy."""
    data: list[float] = []
    non_sign_bits = total_bits - 1
    additional_items = 2 ** (non_sign_bits - max_exponent_bits) - 1
    for i in range(max_exponent_bits):
        items = (
            2 ** (i + non_sign_bits - max_exponent_bits) + 1
            if signed
            else 2 ** (i + non_sign_bits - max_exponent_bits + 1) + 1
        )
        bounds = np.linspace(0.1, 1, int(items))
        means = (bounds[:-1] + bounds[1:]) / 2.0
        data += list(10 ** (-(max_exponent_bits - 1) + i) * means)
        if signed:
            data += list(-(10 ** (-(max_exponent_bits - 1) + i)) * means)
    if additional_items > 0:
        bounds = np.linspace(0.1, 1, additional_items + 1)
        means = (bounds[:-1] + bounds[1:]) / 2.0
        data += list(10 ** (-(max_exponent_bits - 1) + max_exponent_bits - 1) * means)
        if signed:
            data += list(-(10 ** (-(max_exponent_bits - 1) + max_exponent_bits - 1)) * means)
    data += [0.0, 1.0]
    data += [0.0] * (256 - len(data))
    return np.sort(np.array(data))


def _nearest(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    index = np.clip(np.searchsorted(table, x), 1, len(table) - 1)
    left, right = table[index - 1], table[index]
    return np.where(np.abs(x - left) <= np.abs(right - x), left, right)


def blockwise(values: np.ndarray, to_unit, from_unit) -> np.ndarray:
    """Quantize ``values`` in blocks: scale by the block's absmax, map, decode back."""
    blocks = values.reshape(-1, BLOCK)
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    scale = np.where(absmax > 0, absmax, 1.0)
    return (from_unit(to_unit(blocks / scale)) * scale).reshape(values.shape)


SIGNED_DYNAMIC, UNSIGNED_DYNAMIC = dynamic_map(True), dynamic_map(False)
MAPS = {
    "linear": (
        (lambda x: np.round(127 * x), lambda q: q / 127),
        (lambda x: np.round(255 * x), lambda q: q / 255),
    ),
    "companded": (
        (
            lambda x: np.round(127 * 2 * x / (1 + np.abs(x))),
            lambda q: (q / 127) / (2 - np.abs(q / 127)),
        ),
        (lambda x: np.round(255 * np.sqrt(x)), lambda q: (q / 255) ** 2),
    ),
    "signed sqrt": (
        (
            lambda x: np.round(127 * np.sign(x) * np.sqrt(np.abs(x))),
            lambda q: np.sign(q) * (q / 127) ** 2,
        ),
        (lambda x: np.round(255 * np.sqrt(x)), lambda q: (q / 255) ** 2),
    ),
    "dynamic": (
        (lambda x: _nearest(SIGNED_DYNAMIC, x), lambda q: q),
        (lambda x: _nearest(UNSIGNED_DYNAMIC, x), lambda q: q),
    ),
}


def adam_state(n: int, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    block_scale = np.repeat(10 ** rng.uniform(-3, 0, n // BLOCK), BLOCK)
    element_scale = 10 ** rng.uniform(-0.5, 0.5, n)
    m = np.zeros(n, np.float32)
    v = np.zeros(n, np.float32)
    for _ in range(steps):
        g = (rng.standard_t(3, n) * block_scale * element_scale).astype(np.float32)
        m = np.float32(0.9) * m + np.float32(0.1) * g
        v = np.float32(0.999) * v + np.float32(0.001) * g * g
    return m, v, steps


def main() -> None:
    m, v, t = adam_state(1 << 18, 300)
    eps = 1e-8
    bias1, bias2 = 1 - 0.9**t, 1 - 0.999**t

    def direction(mm, vv):
        return (mm / bias1) / (np.sqrt(vv / bias2) + eps)

    exact = direction(m, v)
    print(f"{'map':<10} {'m rel. RMS err':>15} {'v rel. RMS err':>15} {'u rel. RMS err':>15} "
          f"{'u p99 rel. err':>15} {'v=0, m!=0':>10}")  # fmt: skip
    for name, ((m_to, m_from), (v_to, v_from)) in MAPS.items():
        mq = blockwise(m, m_to, m_from)
        vq = blockwise(v, v_to, v_from)
        u = direction(mq, vq)
        rel = np.abs(u - exact) / (np.abs(exact) + 1e-12)
        zero_v = float(np.mean((vq == 0) & (mq != 0)))
        print(
            f"{name:<10} {np.sqrt(np.mean((mq - m) ** 2) / np.mean(m**2)):>15.4f} "
            f"{np.sqrt(np.mean((vq - v) ** 2) / np.mean(v**2)):>15.4f} "
            f"{np.sqrt(np.mean((u - exact) ** 2) / np.mean(exact**2)):>15.4f} "
            f"{np.quantile(rel, 0.99):>15.4f} {zero_v:>10.2%}"
        )


if __name__ == "__main__":
    main()
