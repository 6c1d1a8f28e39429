"""The preflight's report: one row per check and subject, its statuses, its table and exit code."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["OK", "WARN", "FAIL", "UNCHECKED", "STATUSES", "GiB", "Check", "Report"]

OK, WARN, FAIL, UNCHECKED = "ok", "warn", "FAIL", "could not check"
STATUSES = (OK, WARN, FAIL, UNCHECKED)
GiB = 1024**3


@dataclass
class Check:
    """One row of the preflight table."""

    check: str
    subject: str
    status: str
    detail: str


@dataclass
class Report:
    """Every check of one preflight run."""

    config: str
    offline: bool
    rows: list[Check] = field(default_factory=list)

    def add(self, check: str, subject: str, status: str, detail: str) -> Check:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        row = Check(check, subject, status, detail)
        self.rows.append(row)
        return row

    def of(self, check: str) -> list[Check]:
        return [r for r in self.rows if r.check == check]

    @property
    def exit_code(self) -> int:
        statuses = {r.status for r in self.rows}
        if FAIL in statuses:
            return 1
        return 3 if UNCHECKED in statuses else 0

    def table(self) -> str:
        """The report as one plain-text table, then the failures and what was not checked."""
        heads = ("CHECK", "SUBJECT", "STATUS", "DETAIL")
        cells = [(r.check, r.subject, r.status, r.detail) for r in self.rows]
        widths = [
            max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(heads[:3])
        ]
        lines = [
            f"Preflight of {self.config}" + (" (OFFLINE: no network used)" if self.offline else ""),
            "  ".join(h.ljust(w) for h, w in zip(heads[:3], widths, strict=True)) + "  " + heads[3],
        ]
        for c in cells:
            lines.append("  ".join(v.ljust(w) for v, w in zip(c[:3], widths, strict=True)) + "  " + c[3])
        counts = {s: sum(r.status == s for r in self.rows) for s in STATUSES}
        lines.append("")
        lines.append(
            f"{counts[OK]} ok, {counts[WARN]} warn, {counts[FAIL]} failed, {counts[UNCHECKED]} could not be checked"
        )
        for r in self.rows:
            if r.status == FAIL:
                lines.append(f"FAILED  {r.check} {r.subject}: {r.detail}")
        for r in self.rows:
            if r.status == UNCHECKED:
                lines.append(f"NOT CHECKED  {r.check} {r.subject}: {r.detail}")
        verdict = {
            0: "READY: every check passed",
            1: "NOT READY: fix the failures above",
            3: "NOT VERIFIED: nothing failed, but the checks above could not be run",
        }[self.exit_code]
        lines.append(verdict)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "offline": self.offline,
            "exit_code": self.exit_code,
            "rows": [asdict(r) for r in self.rows],
        }
