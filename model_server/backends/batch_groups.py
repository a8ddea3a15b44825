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
    groups, cur, used = [], [], 0
    for item in sorted(items, key=length):
        n = length(item)  # the longest so far: sorted ascending
        padded = (len(cur) + 1) * n
        if cur and (padded > budget or padded > (1 + max_padding) * (used + n)):
            groups.append(cur)
            cur, used = [], 0
        cur.append(item)
        used += n
    if cur:
        groups.append(cur)
    return groups


def budget_groups(items: list, cost: Callable, budget: int) -> list[list]:
    """Consecutive groups whose summed cost stays within budget (at least one item each)."""
    groups, cur, used = [], [], 0
    for item in items:
        c = cost(item)
        if cur and used + c > budget:
            groups.append(cur)
            cur, used = [], 0
        cur.append(item)
        used += c
    if cur:
        groups.append(cur)
    return groups
