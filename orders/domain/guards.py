"""The day's loss and drawdown guards (issue #16), as pure rules: which level an account's equity breaches.

* loss = the day's start equity − equity now, when positive: realised plus unrealised since the trading day began;
* drawdown = the day's peak equity − equity now;
* each has a soft level (the account goes REDUCING) and a hard one (HALTED); None means no level.

A level fires once a day: ``guard_breach`` names the highest level breached *above* the one already tripped
that day, so a level already acted on (and perhaps resumed from by a supervisor) is not acted on again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ZERO = Decimal(0)


class Level(StrEnum):
    NONE = ""
    SOFT = "SOFT"
    HARD = "HARD"


RANK = {Level.NONE: 0, Level.SOFT: 1, Level.HARD: 2}


@dataclass(frozen=True, slots=True)
class GuardLevels:
    daily_loss_soft: Decimal | None = None
    daily_loss_hard: Decimal | None = None
    drawdown_soft: Decimal | None = None
    drawdown_hard: Decimal | None = None

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.daily_loss_soft, self.daily_loss_hard, self.drawdown_soft,
                                           self.drawdown_hard))


@dataclass(frozen=True, slots=True)
class Breach:
    """The level breached, by which measure, how far and against which level."""
    level: Level
    measure: str            # "loss" (since the day began) or "drawdown" (from the day's peak)
    amount: Decimal         # the loss or the drawdown now
    limit: Decimal          # the level it reached


def day_loss(*, start_equity: Decimal, equity: Decimal) -> Decimal:
    """What the account has lost since the day began (zero when it is up)."""
    return max(ZERO, start_equity - equity)


def drawdown(*, peak_equity: Decimal, equity: Decimal) -> Decimal:
    """How far the account is below the day's peak equity."""
    return max(ZERO, peak_equity - equity)


def guard_breach(*, levels: GuardLevels, start_equity: Decimal, peak_equity: Decimal, equity: Decimal,
                 tripped: Level = Level.NONE) -> Breach | None:
    """The highest level the equity breaches (reaching a level counts), if it is above ``tripped`` (the level
    already acted on today); else None. A hard breach wins over a soft one; at the same level the loss is named
    before the drawdown."""
    peak = max(peak_equity, equity)
    loss, down = day_loss(start_equity=start_equity, equity=equity), drawdown(peak_equity=peak, equity=equity)
    for level, checks in ((Level.HARD, (("loss", loss, levels.daily_loss_hard),
                                        ("drawdown", down, levels.drawdown_hard))),
                          (Level.SOFT, (("loss", loss, levels.daily_loss_soft),
                                        ("drawdown", down, levels.drawdown_soft)))):
        if RANK[level] <= RANK[Level(tripped)]:
            return None
        for measure, amount, limit in checks:
            if limit is not None and amount > 0 and amount >= limit:
                return Breach(level=level, measure=measure, amount=amount, limit=limit)
    return None


def soft_not_below_hard(levels: dict[str, Decimal | None]) -> str | None:
    """The first measure ("daily_loss", "drawdown") whose soft level is not below its hard one, both set; else
    None. A soft level must fire before the hard one it warns of."""
    for measure in ("daily_loss", "drawdown"):
        soft, hard = levels.get(f"{measure}_soft"), levels.get(f"{measure}_hard")
        if soft is not None and hard is not None and soft >= hard:
            return measure
    return None


def trading_day(now: datetime, timezone_name: str) -> date:
    """The account's trading day at ``now``: the date at ``timezone_name`` (an IANA name; UTC if unknown)."""
    try:
        zone = ZoneInfo(timezone_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return now.astimezone(zone).date()
