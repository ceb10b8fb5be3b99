"""The report's charts, drawn with matplotlib (Agg, no display) and returned as PNG bytes.

Each function takes the plain dicts of mentor.report.data and draws one figure; none reads the store.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

ACCURACY, MACRO_F1, PROFICIENCY = "#1f77b4", "#ff7f0e", "#7f7f7f"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
DPI = 110


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _errors(values: list[float | None], cis: list[list[float] | None]) -> list[list[float]]:
    """matplotlib's asymmetric error bars (below, above) from [low, high] intervals; 0 where unknown."""
    below = [max(0.0, v - ci[0]) if v is not None and ci else 0.0 for v, ci in zip(values, cis)]
    above = [max(0.0, ci[1] - v) if v is not None and ci else 0.0 for v, ci in zip(values, cis)]
    return [below, above]


def progress_chart(rounds: list[dict[str, Any]], best: int | None, metric_name: str = "macro_f1") -> bytes:
    """Holdout accuracy and macro-F1 per round (95% intervals), and the teacher's proficiency."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    xs = [r["round"] for r in rounds]
    for key, label, colour, offset in (("accuracy", "holdout accuracy", ACCURACY, -0.06), ("macro_f1", "holdout macro-F1", MACRO_F1, 0.06)):
        values = [r[key] for r in rounds]
        cis = [(r.get("ci") or {}).get(key) for r in rounds]
        ax.errorbar([x + offset for x in xs], values, yerr=_errors(values, cis), marker="o", capsize=4, color=colour,
                    label=label)
    if best is not None:
        best_value = next((r[metric_name] for r in rounds if r["round"] == best), None)
        if best_value is not None:
            ax.plot([best], [best_value], marker="*", markersize=18, color="gold", markeredgecolor="black", linestyle="none",
                    label=f"best round ({best})", zorder=5)
    ax.set_ylim(0, 1)
    ax.set_xticks(xs)
    ax.set_xlabel("round (0 = untuned student)")
    ax.set_ylabel("holdout score")
    ax.grid(axis="y", alpha=0.3)
    proficiency = [(r["round"], r["proficiency"]) for r in rounds if r["proficiency"] is not None]
    right = ax.twinx()
    if proficiency:
        right.plot(*zip(*proficiency), marker="s", linestyle="--", color=PROFICIENCY, label="teacher's proficiency (1-10)")
    right.set_ylim(0, 10.5)
    right.set_ylabel("teacher's proficiency")
    handles = ax.get_legend_handles_labels()
    extra = right.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8,
              ncol=4, frameon=False)
    ax.set_title("Holdout scores per round (whiskers: 95% bootstrap interval)", fontsize=10)
    return _png(fig)


def confusion_chart(confusions: list[dict[str, Any]]) -> bytes:
    """Side-by-side confusion matrices (rows: truth, columns: prediction), counts in the cells."""
    fig, axes = plt.subplots(1, len(confusions), figsize=(4.6 * len(confusions), 4.2), squeeze=False)
    for ax, c in zip(axes[0], confusions):
        matrix = c["matrix"]
        ax.imshow(matrix, cmap="Blues", vmin=0)
        top = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, value in enumerate(row):
                ax.text(j, i, str(value), ha="center", va="center", fontsize=9,
                        color="white" if top and value > top * 0.6 else "black")
        ax.set_xticks(range(len(c["columns"])), [col.replace("(unparseable)", "(unparsed)") for col in c["columns"]],
                      rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(c["labels"])), c["labels"], fontsize=8)
        ax.set_xlabel("prediction")
        ax.set_ylabel("truth")
        accuracy = f", accuracy {c['accuracy']:.3f}" if c.get("accuracy") is not None else ""
        ax.set_title(f"{c['title']}{accuracy}", fontsize=10)
    fig.tight_layout()
    return _png(fig)


BASELINE_KINDS = ("tfidf", "embed", "majority")  # mentor.baselines: drawn as reference lines too


def models_chart(comparison: dict[str, Any]) -> bytes:
    """Accuracy and macro-F1 of each compared system, with 95% intervals; each classical baseline's macro-F1
    also as a dotted reference line across the chart, so every system reads against it."""
    systems = comparison["systems"]
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.75 * len(systems)))
    ys = list(range(len(systems)))
    height = 0.38
    for offset, key, label, colour in ((-height / 2, "accuracy", "accuracy", ACCURACY), (height / 2, "macro_f1", "macro-F1", MACRO_F1)):
        values = [s[key] for s in systems]
        cis = [(s.get("ci") or {}).get(key) for s in systems]
        ax.barh([y + offset for y in ys], values, height=height, xerr=_errors(values, cis), capsize=3, color=colour, label=label)
        for y, v, ci in zip(ys, values, cis):
            # The number sits right of the interval's whisker, where no bar or line crosses it.
            ax.text(max(v, ci[1] if ci else v) + 0.015, y + offset, f"{v:.3f}", va="center", ha="left", fontsize=7)
    for i, s in enumerate(s for s in systems if s.get("kind") in BASELINE_KINDS):
        ax.axvline(s["macro_f1"], color=PALETTE[(i + 2) % len(PALETTE)], linestyle=":", linewidth=1.2,
                   label=f"{s['system'].split(' (')[0]} macro-F1 (reference)")
    ax.set_yticks(ys, [s["system"] for s in systems], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel("score (whiskers: 95% bootstrap interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.3 / len(systems)), ncol=3, fontsize=8, frameon=False)
    ax.set_title(f"Systems on {_short(comparison['data'])} (n={comparison['n']})", fontsize=10)
    return _png(fig)


def preference_chart(judgements: list[dict[str, Any]]) -> bytes:
    """Preference differential (wins minus losses, as a share of items) per judged pair, with 95% intervals."""
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.75 * len(judgements)))
    ys = list(range(len(judgements)))
    values = [j["differential"] for j in judgements]
    colours = ["#2ca02c" if v > 0 else "#d62728" if v < 0 else PROFICIENCY for v in values]
    ax.barh(ys, values, xerr=_errors(values, [j.get("ci") for j in judgements]), capsize=4, color=colours, height=0.5)
    ax.plot(values, ys, marker="D", color="black", linestyle="none", markersize=5)  # visible even at exactly 0
    for y, j in zip(ys, judgements):
        ax.text(1.02, y, f"{j['wins']} W / {j['ties']} T / {j['losses']} L", va="center", ha="left", fontsize=8,
                transform=ax.get_yaxis_transform())
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(ys, [f"{j['a']}\nvs {j['b']}" for j in judgements], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(-1, 1)
    ax.set_xlabel("preference differential: share of items where the judge preferred the first system, minus the second")
    ax.grid(axis="x", alpha=0.3)
    judges = sorted({j["judge"] for j in judgements})
    ax.set_title("Explanations judged in both orders; judge: " + "; ".join(judges), fontsize=9)
    return _png(fig)


def stacked_chart(per_round: dict[int, dict[str, float]], title: str, ylabel: str, order: list[str] | None = None) -> bytes:
    """One stacked bar per round (curriculum by class or by source, seconds by step)."""
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    rounds = sorted(per_round)
    keys = order or sorted({k for counts in per_round.values() for k in counts})
    keys = [k for k in keys if any(per_round[r].get(k) for r in rounds)]
    names = [str(r) for r in rounds]
    bottom = [0.0] * len(rounds)
    ax.bar(names, bottom)  # fixes the rounds as categories even when every value is zero
    for i, key in enumerate(keys):
        values = [per_round[r].get(key, 0) for r in rounds]
        ax.bar(names, values, bottom=bottom, label=key, color=PALETTE[i % len(PALETTE)])
        bottom = [b + v for b, v in zip(bottom, values)]
    ax.set_xlabel("round")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if keys:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title(title, fontsize=10)
    return _png(fig)


def _short(path: str, limit: int = 60) -> str:
    return path if len(path) <= limit else "..." + path[-(limit - 3):]


def learning_curves_chart(study: dict[str, Any]) -> bytes:
    """Holdout macro-F1 against examples trained, per teacher: the mean over seeds with its min-max band, and
    the baselines trained on the same curricula: TF-IDF (dashed) and all-MiniLM-L6-v2 embeddings (dotted)."""
    teachers = sum(1 for curve in study["curves"].values() if curve)
    fig, ax = plt.subplots(figsize=(8, 4.2 + 0.35 * teachers))
    top = 0.0
    for i, (teacher, curve) in enumerate(study["curves"].items()):
        if not curve:
            continue
        colour = PALETTE[i % len(PALETTE)]
        xs = [p["examples"] for p in curve]
        seeds = max(p["seeds"] for p in curve)
        ax.plot(xs, [p["mean"] for p in curve], marker="o", color=colour, label=f"{teacher} (student, {seeds} seed(s))")
        ax.fill_between(xs, [p["min"] for p in curve], [p["max"] for p in curve], color=colour, alpha=0.15)
        top = max([top, *(p["max"] for p in curve), *(p[k] or 0 for p in curve for k in ("tfidf_mean", "embed_mean") if k in p)])
        tf = [(p["examples"], p["tfidf_mean"]) for p in curve if p["tfidf_mean"] is not None]
        if tf:
            ax.plot(*zip(*tf), linestyle="--", marker="x", color=colour, alpha=0.8, label=f"{teacher} (TF-IDF, same curricula)")
        em = [(p["examples"], p["embed_mean"]) for p in curve if p.get("embed_mean") is not None]
        if em:
            ax.plot(*zip(*em), linestyle=":", marker="+", color=colour, alpha=0.8, label=f"{teacher} (embed, same curricula)")
    if study.get("control_final") is not None:
        ax.axhline(study["control_final"], color="#7f7f7f", linestyle=":", linewidth=1,
                   label=f"{study['control']}'s final mean")
    ax.set_xlabel("curriculum examples trained on")
    ax.set_ylabel(f"holdout macro-F1 (n={study['holdout']})")
    ax.set_ylim(0, min(1.0, top + 0.1))  # the curves, not empty space up to 1.0
    ax.grid(alpha=0.3)
    # Below the axes: with several teachers (three lines each) a legend inside covers the curves.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8, frameon=False)
    ax.set_title(f"Study {study['study']}: learning curves (band: min-max over seeds)")
    return _png(fig)
