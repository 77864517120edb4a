"""The ``--groups`` flag shared by ``ferxai compare`` (the group test) and ``ferxai
extended-metrics`` (the groups' IoU difference): which groups of networks to compare."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

from ferxai.comparison.group_test import default_groups, parse_groups
from ferxai.core.constants import NETWORKS, network_order

GROUPS_HELP = (
    "groups of networks, NAME=network,network,... (two or more; repeatable). Default: the "
    "registry's from-scratch / pre-trained split, when the networks include both"
)


def add_groups_argument(parser: argparse.ArgumentParser, help_text: str = GROUPS_HELP) -> None:
    parser.add_argument(
        "--groups", nargs="+", action="extend", default=None, metavar="NAME=NET,...",
        help=help_text,
    )


def selected_groups(
    networks: Iterable[str], specs: Sequence[str] | None = None
) -> dict[str, list[str]] | None:
    """``--groups`` when given (networks checked against the paper's and the ones found), else
    the registry's split of ``networks``; None when that split has not both groups."""
    networks = set(networks)
    if specs:
        return parse_groups(specs, known=network_order(set(NETWORKS) | networks))
    return default_groups(networks)
