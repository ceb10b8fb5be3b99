"""The report's explanation-preference section: every saved `mentor judge` result (the newest per pair and
judge) as a table and a chart, each judge's position bias and agreement with its check judge, and examples
side by side: items the first system won and lost, with both texts and both orders' verdicts and reasons.

Explanations and reasons are model output: every one is escaped (mentor.report.page.esc) and clipped.
"""

from __future__ import annotations

from typing import Any

from mentor.report import charts
from mentor.report.page import esc, note, num, section, table, with_ci

EXAMPLES = 3  # items shown per side: won by system A, lost by it
MAX_SHOWN_CHARS = 600


def preference_section(data: dict[str, Any], run_id: int, chart) -> str:
    judged = data["judgements"]
    if not judged:
        return section("preference", "Explanation preference", note(
            f"No judgement saved yet: run <code>mentor judge {run_id}</code> (offline judge), "
            f"<code>mentor judge {run_id} --judge consequence</code> or <code>mentor judge {run_id} --judge openai:MODEL</code>; "
            f"<code>--models best,definition</code> and <code>best,reference</code> compare with texts that need no model."))
    rows = [[esc(j["a"]), esc(j["b"]), esc(j["judge"]), num(j["n"], "d"), num(j["wins"], "d"), num(j["ties"], "d"),
             num(j["losses"], "d"), with_ci(j["differential"], j.get("ci")), num(j.get("order_disagreements"), "d"),
             num((j.get("position_bias") or {}).get("share_first"), ".2f"), *_agreement_cells(j)] for j in judged]
    head = ["system A", "system B", "judge", "items", "A wins", "ties", "B wins", "differential", "orders disagreed",
            "chose first shown", "check judge", "check differential", "agreement (both decisive)", "kappa"]
    return section("preference", "Explanation preference (both orders)",
                   chart("preference.png", charts.preference_chart(judged), "preference differential per judged pair"),
                   table(head, rows, text_columns={0, 1, 2, 10}),
                   note("Each item is judged twice, once with each system first; it counts as a win only when both "
                        "orders agree, otherwise as a tie. Differential = (A wins - B wins) / items. Chose first shown: "
                        "the share of decisive verdicts, over both orders, that picked the explanation in the first "
                        "position (0.50 = no position bias). The check judge is a second, independent judge run on the "
                        "same texts; agreement is the share of items where both judges were decisive on which they agree "
                        "(that count in brackets), kappa is Cohen's kappa over win/tie/loss on all items."),
                   *(_examples(j) for j in judged))


def _agreement_cells(judged: dict[str, Any]) -> list[str]:
    check, agreed = judged.get("check") or {}, judged.get("agreement") or {}
    if not check:
        return ["-", "-", "-", "-"]  # saved before judgements were cross-checked
    if "skipped" in check:
        return [esc(f"{check['judge']} (not run: {check['skipped']})"), "-", "-", "-"]
    rate = "-" if agreed.get("rate") is None else f"{agreed['rate']:.2f} ({agreed['both_decisive']})"
    return [esc(check["judge"]), with_ci(check.get("differential"), check.get("ci")), rate, num(agreed.get("kappa"), "+.2f")]


def _examples(judged: dict[str, Any]) -> str:
    """Up to EXAMPLES items system A won and as many it lost, side by side, with both orders' verdicts."""
    title = f"<h3>{esc(judged['a'])} vs {esc(judged['b'])}: {esc(judged['judge'])}</h3>"
    notes = "".join(note(esc(text)) for text in judged.get("notes", []))
    items = [i for i in judged.get("items", []) if "a_text" in i]
    if not items:
        return title + notes + note("This judgement was saved without its texts; run <code>mentor judge</code> again to see examples.")
    chosen = ([i for i in items if i["outcome"] == "win"][:EXAMPLES] + [i for i in items if i["outcome"] == "loss"][:EXAMPLES])
    if not chosen:
        return title + notes + note("No item was won or lost (every item is a tie), so there is no example to show.")
    rows = [[esc(i["outcome"]), _clipped(_finding(i)), _clipped(i["a_text"]), _clipped(i["b_text"]),
             _order(i, "forward", judged), _order(i, "backward", judged), _check(i)] for i in chosen]
    head = ["A", "finding", f"A: {esc(judged['a'])}", f"B: {esc(judged['b'])}", "A shown first", "B shown first",
            "check judge (A's outcome)"]
    return (title + notes + table(head, rows, text_columns={1, 2, 3, 4, 5, 6})
            + note("Up to 3 items A won and 3 it lost. A judge's reason names positions: with B shown first, the "
                   "reason's A is system B. The check judge's reason is from its order with A shown first."))


def _finding(item: dict[str, Any]) -> str:
    fields = item.get("input") or {}
    return fields.get("review") or next(iter(fields.values()), "")


def _order(item: dict[str, Any], order: str, judged: dict[str, Any]) -> str:
    """One order's verdict named by system (in the backward order system B stood in position A) and its reason."""
    verdict = item.get(f"{order}_verdict")
    if verdict is None:
        return "-"
    first, second = ("A", "B") if order == "forward" else ("B", "A")
    chose = {"A": first, "B": second}.get(verdict)
    said = f"<b>{'tie' if chose is None else 'prefers ' + chose}</b>"
    reason = item.get(f"{order}_reason")
    return said + (f"<br><small>{_clipped(reason)}</small>" if reason else "")


def _check(item: dict[str, Any]) -> str:
    outcome = item.get("check_outcome")
    if outcome is None:
        return "-"
    reason = item.get("check_reason")
    return f"<b>{esc(outcome)}</b>" + (f"<br><small>{_clipped(reason)}</small>" if reason else "")


def _clipped(text: Any) -> str:
    text = "" if text is None else str(text)
    return esc(text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS - 3] + "...")
