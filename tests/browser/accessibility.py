"""Accessibility basics checked in the browser on every page the tests visit.

Computed, not eyeballed: every form control has an accessible name, every
button and link has a name, every state badge carries its state in words,
and every visible piece of text meets WCAG AA contrast against the colour
actually painted behind it (4.5:1, or 3:1 for large text), alpha included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

_AUDIT = r"""
() => {
  const problems = [];
  const describe = (el) => {
    const text = (el.textContent || el.getAttribute("name") || el.id || "").trim();
    return `<${el.tagName.toLowerCase()} class="${el.getAttribute("class") || ""}"> ${text.slice(0, 60)}`;
  };
  const parse = (value) => {
    const m = /rgba?\(([^)]+)\)/.exec(value || "");
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const luminance = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const backdrop = (el) => {
    const layers = [];
    for (let e = el; e && e.nodeType === 1; e = e.parentElement) {
      const style = getComputedStyle(e);
      if (style.backgroundImage && style.backgroundImage !== "none") return null;
      const c = parse(style.backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  };
  const shown = (el) => {
    const rects = el.getClientRects();
    if (!rects.length) return false;
    const r = el.getBoundingClientRect();
    if (r.width <= 1 || r.height <= 1) return false;  // visually-hidden text is for screen readers
    const style = getComputedStyle(el);
    return style.visibility !== "hidden" && style.display !== "none" && Number(style.opacity) > 0.1;
  };
  const named = (el) =>
    (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") ||
    el.getAttribute("aria-labelledby") || el.getAttribute("title");

  for (const el of document.querySelectorAll("input, select, textarea")) {
    if (el.type === "hidden") continue;
    if (!named(el)) problems.push("no label: " + describe(el));
  }
  for (const el of document.querySelectorAll("button, a[href]")) {
    if (!(el.textContent.trim() || el.getAttribute("aria-label"))) problems.push("no name: " + describe(el));
  }
  for (const el of document.querySelectorAll(".badge")) {
    if (!el.textContent.trim()) problems.push("a state badge without its name: " + describe(el));
  }
  for (const el of document.querySelectorAll("body *")) {
    const own = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !shown(el) || el.closest("[hidden], .visually-hidden, option")) continue;
    const style = getComputedStyle(el);
    const inSvg = el instanceof SVGElement;
    const fgRaw = parse(inSvg ? style.fill : style.color);
    const bg = backdrop(inSvg ? el.closest("svg").parentElement : el);
    if (!fgRaw || !bg) continue;
    const fg = fgRaw.a < 1 ? over(fgRaw, bg) : fgRaw;
    const [hi, lo] = [luminance(fg), luminance(bg)].sort((x, y) => y - x);
    const ratio = (hi + 0.05) / (lo + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const need = large ? 3 : 4.5;
    if (ratio < need) problems.push(`contrast ${ratio.toFixed(2)} < ${need}: ${describe(el)}`);
  }
  return problems;
}
"""


def audit(page: Page) -> list[str]:
    """What on the current page breaks the basics; empty when all is well."""
    problems: list[str] = page.evaluate(_AUDIT)
    return problems
