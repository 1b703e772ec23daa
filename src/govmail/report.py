"""`govmail report`: the yearly usage report (O5; QT §13.1.b, §12) as CSV, HTML or JSON.

The figures come from :func:`govmail.usage.year_report` (run on the directory host over its daily
roll-ups); this module only renders them, in Vietnamese (the readers are the province's
directors and operators):

- CSV: UTF-8 with a byte-order mark, so a spreadsheet (LibreOffice, Excel) opens Vietnamese
  names intact; one row per agency and per unit, then one row per agency mailbox for the
  twice-a-day rule (QT §12).
- HTML: one self-contained page (no script, nothing fetched when it is viewed) with the same
  tables and charts drawn by pygal (https://www.pygal.org) as inline SVG: bars per agency
  (mailboxes, messages sent and received) and lines per month (messages sent and received).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import pygal
from jinja2 import Environment
from markupsafe import Markup
from pygal.style import DefaultStyle

from .errors import GovmailError

FORMATS = ("csv", "html", "json")
MIB = 1024 * 1024
MONTHS = [f"T{month}" for month in range(1, 13)]
MONTHLY_AGENCY_LINES = 10  # beyond this many agencies the monthly chart shows the totals only
STATUS_NAMES = {"active": "hoạt động", "locked": "khoá", "terminated": "đã nghỉ", "deleted": "đã xoá"}
KIND_NAMES = {"personal": "cá nhân", "agency": "cơ quan"}


class ReportError(GovmailError):
    """The report cannot be made: bad year, agency or format, or the host could not read the roll-ups."""


def check_format(text: str) -> str:
    if text not in FORMATS:
        raise ReportError(f"--format {text!r} is not one of {', '.join(FORMATS)}")
    return text


def _statuses(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(kind, status) pairs present in the report, in a stable order."""
    order = list(STATUS_NAMES)
    found = {(kind, status) for row in report["agencies"] for kind, by in row["mailboxes"].items() for status in by}
    rank = {status: index for index, status in enumerate(order)}
    return sorted(found, key=lambda pair: (pair[0] != "personal", rank.get(pair[1], len(rank)), pair[1]))


def _label(kind: str, status: str) -> str:
    return f"Hộp thư {KIND_NAMES.get(kind, kind)} {STATUS_NAMES.get(status, status)}"


def _rows(report: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the agency and unit table (agency rows first, each followed by its units)."""
    pairs = _statuses(report)
    thresholds = report["thresholds"]
    header = [
        "Cơ quan", "Đơn vị", "Tên", *(_label(kind, status) for kind, status in pairs), "Tổng số hộp thư",
        "Dung lượng đã dùng (MiB)", "Dung lượng được cấp (MiB)",
        f"Không truy cập từ {thresholds['lock']} ngày", f"Không truy cập từ {thresholds['delete_notice']} ngày",
        *(f"Thư gửi {month}" for month in MONTHS), *(f"Thư nhận {month}" for month in MONTHS),
    ]  # fmt: skip
    rows = []
    units_of: dict[str, list[Mapping[str, Any]]] = {}
    for unit in report["units"]:
        units_of.setdefault(unit["agency"], []).append(unit)
    for agency in report["agencies"]:
        for row in [agency, *(unit for unit in units_of.get(agency["agency"], []) if unit["unit"] != agency["agency"])]:
            rows.append(
                [
                    row["agency"], row["unit"] if row is not agency else "", row["name"],
                    *(row["mailboxes"].get(kind, {}).get(status, 0) for kind, status in pairs), row["total"],
                    round(row["quota_used_bytes"] / MIB, 1), round(row["quota_allocated_bytes"] / MIB),
                    row["inactive"].get("lock", 0), row["inactive"].get("delete_notice", 0),
                    *row["sent"], *row["received"],
                ]
            )  # fmt: skip
    return header, rows


CHECK_HEADER = [
    "Hộp thư cơ quan", "Cơ quan", "Ngày làm việc có số liệu", "Ngày thiếu kiểm tra buổi sáng",
    "Ngày thiếu kiểm tra buổi chiều", "Ngày không đủ 02 lần kiểm tra", "Các ngày không đủ",
]  # fmt: skip


HTML_MISSED_DATES = 15  # the page lists this many days per mailbox; the CSV lists them all


def _check_rows(report: Mapping[str, Any], limit: int | None = None) -> list[list[Any]]:
    rows = []
    for item in report["agency_mailboxes"]:
        days = [day["date"] for day in item["missed"]]
        shown = " ".join(days[:limit] if limit else days)
        if limit and len(days) > limit:
            shown += f" … (và {len(days) - limit} ngày khác)"
        rows.append(
            [item["address"], item["agency"], item["working_days"], item["missed_morning"], item["missed_afternoon"],
             item["missed_days"], shown]
        )  # fmt: skip
    return rows


def _title(report: Mapping[str, Any]) -> str:
    scope = f" — cơ quan {report['agency']}" if report.get("agency") else ""
    return f"Báo cáo sử dụng hệ thống thư điện tử công vụ năm {report['year']}{scope}"


def _notes(report: Mapping[str, Any]) -> list[str]:
    return [
        f"Số liệu đến ngày {report['as_of'] or '—'}; {report['days_with_data']} ngày có số liệu; "
        f"{report['working_days']} ngày làm việc trong năm (trừ thứ Bảy, Chủ nhật và {len(report['holidays'])} "
        f"ngày nghỉ lễ), {report['working_days_without_data']} ngày làm việc không có số liệu.",
        f"Quy định áp dụng: {report['profile']}. Hộp thư cơ quan phải được kiểm tra ít nhất 02 lần mỗi ngày làm "
        f"việc, đầu buổi sáng và đầu buổi chiều (Quy chế tỉnh Quảng Trị, Điều 12); buổi chiều tính từ "
        f"{report['afternoon_from']} giờ.",
    ]


def to_csv(report: Mapping[str, Any]) -> str:
    """The report as CSV text beginning with U+FEFF (write it as UTF-8)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_title(report)])
    for note in _notes(report):
        writer.writerow([note])
    writer.writerow([])
    header, rows = _rows(report)
    writer.writerow(header)
    writer.writerows(rows)
    writer.writerow([])
    writer.writerow(CHECK_HEADER)
    writer.writerows(_check_rows(report))
    return "\ufeff" + out.getvalue()


def _chart_config(chart: pygal.graph.graph.Graph) -> None:
    chart.js = []  # no script from the internet: the SVG reads as it is
    chart.disable_xml_declaration = True
    chart.style = DefaultStyle(font_family="DejaVu Sans, Arial, sans-serif")
    chart.legend_at_bottom = True
    chart.width, chart.height = 900, 420


def charts(report: Mapping[str, Any]) -> dict[str, str]:
    """Inline SVG charts: ``{"mailboxes": SVG, "messages": SVG, "monthly": SVG}`` (bars per agency;
    monthly lines of the totals, and of each agency's messages sent when there are few agencies)."""
    agencies = report["agencies"]
    labels = [row["agency"] for row in agencies]
    bars = pygal.Bar(title="Số hộp thư theo cơ quan")
    _chart_config(bars)
    bars.x_labels = labels
    most = 0
    for kind in ("personal", "agency"):
        counts = [sum(row["mailboxes"][kind].values()) for row in agencies]
        most = max([most, *counts])
        bars.add(f"Hộp thư {KIND_NAMES[kind]}", counts)
    if most <= 10:
        bars.y_labels = list(range(most + 1))  # whole mailboxes, not 0.2 steps
    messages = pygal.Bar(title=f"Thư gửi và nhận năm {report['year']} theo cơ quan")
    _chart_config(messages)
    messages.x_labels = labels
    messages.add("Thư gửi", [sum(row["sent"]) for row in agencies])
    messages.add("Thư nhận", [sum(row["received"]) for row in agencies])
    monthly = pygal.Line(title=f"Thư gửi và nhận theo tháng năm {report['year']}")
    _chart_config(monthly)
    monthly.x_labels = MONTHS
    # months after the latest roll-up have no figures yet: no point rather than a fall to zero
    months = int(report["as_of"][5:7]) if report.get("as_of") else 0

    def line(values: Sequence[int]) -> list[int | None]:
        return [value if month < months else None for month, value in enumerate(values)]

    monthly.add("Thư gửi", line([sum(row["sent"][month] for row in agencies) for month in range(12)]))
    monthly.add("Thư nhận", line([sum(row["received"][month] for row in agencies) for month in range(12)]))
    for row in agencies if len(agencies) <= MONTHLY_AGENCY_LINES else ():
        dashed = {"dasharray": "3, 3"}
        monthly.add(f"{row['agency']} (gửi)", line(row["sent"]), show_dots=False, stroke_style=dashed)
    drawn = {"mailboxes": bars, "messages": messages, "monthly": monthly}
    return {name: chart.render(is_unicode=True) for name, chart in drawn.items()}


PAGE = """<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 90%; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.5em; text-align: right; }
th { background: #eef; } td.text { text-align: left; } tr.agency td { font-weight: bold; background: #f6f6f6; }
figure { margin: 1em 0; max-width: 900px; }
</style></head><body>
<h1>{{ title }}</h1>
{% for note in notes %}<p>{{ note }}</p>
{% endfor %}
<h2>Biểu đồ</h2>
{% for svg in charts %}<figure>{{ svg }}</figure>
{% endfor %}
<h2>Hộp thư, dung lượng và thư theo cơ quan, đơn vị</h2>
<table><thead><tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr{% if not row[1] %} class="agency"{% endif %}>{% for cell in row -%}
<td{% if loop.index <= 3 %} class="text"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<h2>Kiểm tra hộp thư cơ quan 02 lần mỗi ngày làm việc</h2>
<table><thead><tr>{% for cell in check_header %}<th>{{ cell }}</th>{% endfor %}</tr></thead><tbody>
{% for row in check_rows %}<tr>{% for cell in row -%}
<td{% if loop.index <= 2 or loop.last %} class="text"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
</body></html>
"""


def to_html(report: Mapping[str, Any]) -> str:
    """The report as one HTML page with inline SVG charts."""
    header, rows = _rows(report)
    svgs = charts(report)
    template = Environment(autoescape=True).from_string(PAGE)
    return template.render(
        title=_title(report),
        notes=_notes(report),
        charts=[Markup(svg) for svg in svgs.values()],
        header=header,
        rows=rows,
        check_header=CHECK_HEADER,
        check_rows=_check_rows(report, HTML_MISSED_DATES),
    )


def summary(report: Mapping[str, Any]) -> Sequence[str]:
    """A few lines for people (the CLI's text output)."""
    lines = [_title(report), *_notes(report)]
    for row in report["agencies"]:
        lines.append(
            f"{row['agency']}: {row['total']} hộp thư, thư gửi {sum(row['sent'])}, thư nhận {sum(row['received'])}"
        )
    for item in report["agency_mailboxes"]:
        missed = f"{item['missed_days']}/{item['working_days']}"
        lines.append(f"{item['address']}: {missed} ngày làm việc không đủ 02 lần kiểm tra")
    return lines
