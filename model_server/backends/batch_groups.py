"""Splitting a device batch into forwards by a token budget (torch-free).

Rows of one forward are padded to its longest row, and padding costs as much as
real tokens: so rows are grouped by length, and each forward's rows x tokens is
bounded (device memory). Scoring and generation group their rows with these.
"""

from __future__ import annotations

from collections.abc import Callable


def padded_groups(items: list, length: Callable, budget: int, max_padding: float = 0.25
                  ) -> list[list]:
    """Groups of items sorted by length: rows x longest row stays within budget, and at
    most `max_padding` of a group's rows x longest row is padding.

    One-image questions (~600 tokens) never share a forward with eight-frame ones
    (~4,700): sorted, they go in separate groups.
    """
    def full(rows: int, used: int, n: int) -> bool:  # n: the longest so far (sorted)
        padded = (rows + 1) * n
        return padded > budget or padded > (1 + max_padding) * (used + n)

    return _split(sorted(items, key=length), length, full)


def budget_groups(items: list, cost: Callable, budget: int) -> list[list]:
    """Consecutive groups whose summed cost stays within budget (at least one item each)."""
    return _split(items, cost, lambda rows, used, c: used + c > budget)


def _split(items: list, cost: Callable, full: Callable[[int, int, int], bool]) -> list[list]:
    """Consecutive groups: a group closes before an item when full(rows in it, their summed
    cost, the item's cost) says so; every group holds at least one item."""
    groups, cur, used = [], [], 0
    for item in items:
        c = cost(item)
        if cur and full(len(cur), used, c):
            groups.append(cur)
            cur, used = [], 0
        cur.append(item)
        used += c
    if cur:
        groups.append(cur)
    return groups
