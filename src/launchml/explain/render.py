"""Explanations as pictures: heat-map overlays (PNG), highlighted text (HTML), bars."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import numpy as np


def overlay_png(image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.5) -> bytes:
    """The image (H x W x C uint8) with the heat map on top, as PNG bytes; positive
    attributions red, negative blue (a diverging colour map centred on 0)."""
    from matplotlib import colormaps
    from PIL import Image

    img = np.asarray(image)
    if img.ndim == 2 or img.shape[-1] == 1:
        img = np.repeat(img.reshape(img.shape[0], img.shape[1], 1), 3, axis=2)
    scale = float(np.max(np.abs(heatmap))) or 1.0
    colours = colormaps["bwr"]((np.asarray(heatmap) / scale + 1) / 2)[..., :3] * 255
    strength = (np.abs(heatmap) / scale)[..., None] * alpha
    mixed = img[..., :3].astype(np.float64) * (1 - strength) + colours * strength
    out = Image.fromarray(np.clip(mixed, 0, 255).astype(np.uint8))
    if max(out.size) < 160:  # small images (digits) are shown larger, pixels kept sharp
        k = max(1, 160 // max(out.size))
        out = out.resize((out.size[0] * k, out.size[1] * k), Image.NEAREST)
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def highlighted(tokens: list[tuple[str, float]]) -> str:
    """Tokens as HTML spans shaded by attribution (red: towards the output, blue: against)."""
    scale = max((abs(a) for _, a in tokens), default=0.0) or 1.0
    parts = []
    for tok, a in tokens:
        v = a / scale
        colour = (f"rgba(220,40,40,{abs(v):.2f})" if v >= 0 else
                  f"rgba(40,80,220,{abs(v):.2f})")
        parts.append(f'<span class="tok" style="background:{colour}" title="{a:+.4g}">'
                     f"{html.escape(tok)}</span>")
    return " ".join(parts)


def bars_svg(items: list[tuple[str, float]], *, title: str, xlabel: str,
             width: int = 640) -> str:
    """A horizontal bar chart as inline SVG (signed values, labelled axis)."""
    items = items[:15]
    row, left, top = 20, 170, 28
    height = top + row * len(items) + 36
    scale = max((abs(v) for _, v in items), default=0.0) or 1.0
    mid = left + (width - left - 20) / 2 if any(v < 0 for _, v in items) else left
    span = (width - 20 - mid)
    out = [f'<svg width="{width}" height="{height}" '
           f'role="img" aria-label="{html.escape(title)}">',
           f'<text x="{width / 2}" y="16" text-anchor="middle" font-weight="bold" '
           f'font-size="13">{html.escape(title)}</text>']
    for i, (name, v) in enumerate(items):
        y = top + i * row
        w = abs(v) / scale * span
        x = mid if v >= 0 else mid - w
        colour = "#d33" if v >= 0 else "#36c"
        out.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
                   f"{html.escape(str(name)[:26])}</text>")
        out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{max(w, 0.5):.1f}" height="{row - 6}"'
                   f' fill="{colour}"><title>{html.escape(str(name))}: {v:+.4g}</title></rect>')
    axis_y = top + row * len(items) + 4
    out.append(f'<line x1="{mid}" y1="{top}" x2="{mid}" y2="{axis_y}" stroke="#444"/>')
    out.append(f'<text x="{width / 2}" y="{axis_y + 22}" text-anchor="middle" '
               f'font-size="11">{html.escape(xlabel[:100])}</text>')
    out.append("</svg>")
    return "".join(out)


def explanation_html(e: Any) -> str:
    """One explanation as an HTML block (method, baseline, cost, the attributions)."""
    from launchml.explain.core import answer

    head = (f"<p><b>{html.escape(str(e.input))}</b>: {html.escape(answer(e.prediction))}. "
            f"Explained: {html.escape(e.output)} = {e.value:.4g}; method "
            f"<code>{e.method}</code>, baseline: {html.escape(e.baseline)}"
            + (f" ({e.base_value:.4g})" if e.base_value == e.base_value else "")
            + f"; cost {e.cost.get('seconds', 0) * 1000:.1f} ms.</p>")
    body = []
    if e.heatmap is not None and e.image is not None:
        body.append(f'<img class="overlay" alt="{e.method} overlay of {html.escape(str(e.input))}"'
                    f' src="{data_uri(overlay_png(e.image, e.heatmap))}">')
    if e.contributions and len(e.contributions) > 1:
        body.append(bars_svg([(c, w) for c, _, w in e.top(12)],
                             title="contributions", xlabel=e.output))
    for col, toks in e.tokens.items():
        body.append(f"<p>{html.escape(col)} ({e.token_method}): {highlighted(toks)}</p>")
    return f'<div class="explained">{head}{"".join(body)}</div>'
