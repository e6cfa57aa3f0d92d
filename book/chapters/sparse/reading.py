"""What a notebook cell shows of one measurement: the lines it prints, beside the numbers its ledger
row records. The chapter's functions return a `Reading` subclass each (`.show()`, then the fields the
ledger call takes)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(kw_only=True)
class Reading:
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)

    def show(self) -> None:
        """Print the lines, one `print` each (nothing at all when there are none)."""
        for line in self.lines:
            print(line)


__all__ = ["Reading"]
