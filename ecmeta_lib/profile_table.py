"""Tables that compare training profiles field by field, generated from the config objects so they
stay true when a profile changes (notebooks 03 and 04 show them)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import fields, is_dataclass
from functools import cache
from typing import Any

import pandas as pd


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass (the string literal under each field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flat(obj: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, str]]:
    out: dict[str, tuple[Any, str]] = {}
    docs = field_docs(type(obj))
    for f in fields(obj):
        if f.name in skip:
            continue
        value = getattr(obj, f.name)
        if is_dataclass(value):
            out.update(_flat(value, f"{prefix}{f.name}."))
        else:
            out[prefix + f.name] = (value, docs.get(f.name, ""))
    return out


def profile_differences(a: str = "paper", b: str = "quick") -> pd.DataFrame:
    """Every training setting where profiles `a` and `b` differ (agent config included), with the
    field's own description; the environment is the same in every profile and left out."""
    from .profiles import get_profile

    pa, pb = get_profile(a), get_profile(b)
    fa = _flat(pa, skip=("env", "name", "description"))
    fb = _flat(pb, skip=("env", "name", "description"))
    rows = [{"setting": k, a: repr(fa[k][0]), b: repr(fb[k][0]), "meaning": fa[k][1]}
            for k in fa if k in fb and fa[k][0] != fb[k][0]]
    return pd.DataFrame(rows, columns=["setting", a, b, "meaning"])


def shared_choices(a: str = "paper", b: str = "quick") -> pd.DataFrame:
    """Settings equal in both profiles whose description marks them as our choice ("(ours)" or
    "not given"): what even the `paper` profile adds to the paper."""
    from .profiles import get_profile

    fa = _flat(get_profile(a), skip=("env", "name", "description"))
    fb = _flat(get_profile(b), skip=("env", "name", "description"))
    rows = [{"setting": k, "value": repr(v), "meaning": doc} for k, (v, doc) in fa.items()
            if k in fb and fb[k][0] == v and ("(ours" in doc or "not given" in doc)]
    return pd.DataFrame(rows, columns=["setting", "value", "meaning"])


def markdown(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (no tabulate dependency)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines) + "\n"
