"""Conditions from real AI models: published ImageNet-1k classifiers and their real upgrades.

`data/model_catalogue.csv` lists 11 image-classification families as torchvision publishes
them (weight metadata: ImageNet-1K top-1, GFLOPs per inference, weight-file size, crop size;
`data/PROVENANCE.md` says where every number comes from). With ``ConditionConfig(source=
"catalogue")`` every AI service function (AiSF) of a condition serves one family with |F| of
its sizes, light to heavy, and an upgrade is a published event: newer weights of the same
architecture (accuracy up, cost unchanged) or a move to the family's successor.

Mapping of one catalogue row to a model of a condition (all ours):

* compute intensity rho = GFLOPs * 1e9 / input bits, FLOP per bit, where the input bits of one
  inference are the RGB image at the model's input resolution, ``input_px * input_px * 3
  channels * 8 bit``. A task of V bits then costs V * rho FLOP, as if it were V / input-bits
  images at the model's resolution (a 224-px image is 1 204 224 bit = 147 KB);
* memory R = the weight file (float32) in MB rounded up to an integer; activations and the
  framework's runtime are not added;
* peak accuracy a = ImageNet-1K top-1, %;
* gamma ~ U[quality_exponent_range], one per AiSF, as in the uniform source.

The twins never see the test families: a family's ``split`` is ``twin`` or ``test`` and whole
lineages (a family with its successors) sit on one side. G1-G3 draw twin families at their first
published weights, their upgrades stay in the twin lineages, and T1-T3 draw test families at a
random published weights generation. Rule (ours): the test side holds the vision transformers
(Swin, SwinV2), RegNetY (the twins see its sibling RegNetX), ShuffleNetV2 and DenseNet.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from .aisf import Condition
from .aisf import merge_users as merge_conditions
from .config import ConditionConfig

CATALOGUE_PATH = Path(__file__).resolve().parent / "data" / "model_catalogue.csv"
"""The catalogue shipped with the package."""
REQUIRED_COLUMNS: tuple[str, ...] = (
    "family", "model", "weights", "generation", "upgrade_of", "gflops", "weight_file_mb",
    "top1_pct", "input_px", "split", "successor", "source")
SPLITS: tuple[str, ...] = ("twin", "test")
CHANNELS = 3
"""Colour channels of an input image (RGB)."""
BITS_PER_CHANNEL = 8
"""Bits per channel of an input pixel."""
_TEXT = ("family", "model", "weights", "upgrade_of", "split", "successor", "source")


class CatalogueError(ValueError):
    """The catalogue breaks one of its rules; the message names the row or column."""


def input_bits(input_px: np.ndarray | float) -> np.ndarray:
    """Bits of one model input: an ``input_px`` x ``input_px`` RGB image, 8 bit per channel."""
    px = np.asarray(input_px, dtype=float)
    return px * px * CHANNELS * BITS_PER_CHANNEL


def flop_per_bit(gflops: np.ndarray | float, input_px: np.ndarray | float) -> np.ndarray:
    """Compute intensity, FLOP per bit of input: GFLOPs per inference * 1e9 / `input_bits`."""
    return np.asarray(gflops, dtype=float) * 1e9 / input_bits(input_px)


def memory_mb(weight_file_mb: np.ndarray | float) -> np.ndarray:
    """Model memory, integer MB: the weight file rounded up (no activations added)."""
    return np.ceil(np.asarray(weight_file_mb, dtype=float))


# ---------------------------------------------------------------------------------------------
# loading and validation
# ---------------------------------------------------------------------------------------------
def validate_catalogue(df: pd.DataFrame) -> pd.DataFrame:
    """Check every rule of the catalogue and return it with a fresh index.

    Rules: the `REQUIRED_COLUMNS`; gflops, weight_file_mb and input_px positive; top1_pct in
    (0, 100]; no duplicate (family, model, weights); each model in one family; a family's rows
    light to heavy (GFLOPs non-decreasing) with each model's weights together, generation 1, 2,
    ...; a generation g > 1 names the previous weights in ``upgrade_of``, keeps GFLOPs and input
    size and raises the accuracy; ``split`` in `SPLITS`, one per family; a successor is another
    family on the same split, without cycles; every family has at least 3 sizes.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise CatalogueError(f"catalogue: missing column(s) {', '.join(missing)}")
    if df.empty:
        raise CatalogueError("catalogue: no rows")
    df = df.reset_index(drop=True).copy()
    for c in _TEXT:
        df[c] = df[c].fillna("").astype(str).str.strip()
    for c in ("gflops", "weight_file_mb", "top1_pct", "input_px", "generation"):
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            raise CatalogueError(f"catalogue: column {c} is not numeric in row(s) "
                                 f"{_rows(values.isna())}")
        df[c] = values

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            raise CatalogueError(f"catalogue: {what} in row(s) {_rows(mask)}")

    fail(df.gflops <= 0, "non-positive gflops")
    fail(df.weight_file_mb <= 0, "non-positive weight_file_mb")
    fail((df.input_px <= 0) | (df.input_px != df.input_px.round()),
         "input_px not a positive integer")
    fail((df.top1_pct <= 0) | (df.top1_pct > 100), "top1_pct outside (0, 100]")
    fail((df.generation < 1) | (df.generation != df.generation.round()),
         "generation not an integer >= 1")
    fail(df.duplicated(["family", "model", "weights"], keep=False),
         "duplicate (family, model, weights)")
    fail(~df.split.isin(SPLITS), f"split not one of {', '.join(SPLITS)}")
    df["input_px"] = df.input_px.astype(int)
    df["generation"] = df.generation.astype(int)
    owners = df.groupby("model").family.nunique()
    if (owners > 1).any():
        raise CatalogueError(f"catalogue: model(s) {', '.join(owners[owners > 1].index)} in "
                             "more than one family")
    families = list(dict.fromkeys(df.family))
    for fam in families:
        _validate_family(df[df.family == fam], fam, families)
    _validate_successors(df)
    return df


def _rows(mask: pd.Series) -> str:
    """Row numbers of `mask` as the CSV shows them (header = line 1, first row = line 2)."""
    idx = [int(i) + 2 for i in np.flatnonzero(mask.to_numpy())]
    return ", ".join(f"line {i}" for i in idx[:5]) + (" ..." if len(idx) > 5 else "")


def _validate_family(rows: pd.DataFrame, fam: str, families: list[str]) -> None:
    if rows.split.nunique() != 1:
        raise CatalogueError(f"catalogue: family {fam} has rows on more than one split")
    if rows.successor.nunique() != 1:
        raise CatalogueError(f"catalogue: family {fam} names more than one successor")
    if np.any(np.diff(rows.gflops.to_numpy()) < 0):
        raise CatalogueError(f"catalogue: family {fam}'s sizes are not sorted light to heavy "
                             "(gflops must not decrease down the rows)")
    models = list(dict.fromkeys(rows.model))
    if len(models) < 3:
        raise CatalogueError(f"catalogue: family {fam} has {len(models)} size(s), at least 3 "
                             "are needed")
    order = rows.model.to_numpy()
    if any(np.ptp(np.flatnonzero(order == m)) + 1 != int((order == m).sum()) for m in models):
        raise CatalogueError(f"catalogue: family {fam}: a model's weights are not on "
                             "consecutive rows")
    for m in models:
        w = rows[rows.model == m]
        gens = w.generation.to_list()
        if gens != list(range(1, len(gens) + 1)):
            raise CatalogueError(f"catalogue: {fam}/{m}: generations must be 1, 2, ... in row "
                                 f"order, got {gens}")
        first = w.iloc[0]
        if first.upgrade_of:
            raise CatalogueError(f"catalogue: {fam}/{m} {first.weights}: generation 1 upgrades "
                                 "nothing, upgrade_of must be empty")
        for prev, cur in zip(w.itertuples(), w.iloc[1:].itertuples(), strict=False):
            where = f"catalogue: {fam}/{m} {cur.weights}"
            if cur.upgrade_of != prev.weights:
                raise CatalogueError(f"{where}: upgrade_of must name the previous weights "
                                     f"{prev.weights!r}, got {cur.upgrade_of!r}")
            if cur.gflops != prev.gflops or cur.input_px != prev.input_px:
                raise CatalogueError(f"{where}: an upgrade of the weights keeps gflops and "
                                     "input_px")
            if cur.top1_pct <= prev.top1_pct:
                raise CatalogueError(f"{where}: an upgrade must raise top1_pct")


def _validate_successors(df: pd.DataFrame) -> None:
    succ = df.groupby("family", sort=False).successor.first().to_dict()
    split = df.groupby("family", sort=False).split.first().to_dict()
    for fam, nxt in succ.items():
        if not nxt:
            continue
        if nxt not in succ:
            raise CatalogueError(f"catalogue: family {fam}'s successor {nxt!r} is not a family "
                                 "of the catalogue")
        if split[nxt] != split[fam]:
            raise CatalogueError(f"catalogue: family {fam} ({split[fam]}) and its successor "
                                 f"{nxt} ({split[nxt]}) must be on the same split")
        seen, cur = {fam}, nxt
        while cur:
            if cur in seen:
                raise CatalogueError(f"catalogue: the successors of {fam} form a cycle")
            seen.add(cur)
            cur = succ[cur]


@lru_cache(maxsize=4)
def _load(path: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, dtype={c: str for c in _TEXT}, keep_default_na=False)
    except FileNotFoundError:
        raise CatalogueError(f"catalogue file {path} not found") from None
    return validate_catalogue(df)


def load_catalogue(path: Path | str | None = None) -> pd.DataFrame:
    """The validated catalogue (`CATALOGUE_PATH` by default), with derived columns
    ``flop_per_bit`` (FLOP/bit), ``memory_mb`` (integer MB) and ``input_bits`` (bit)."""
    df = _load(str(Path(path) if path is not None else CATALOGUE_PATH)).copy()
    df["input_bits"] = input_bits(df.input_px)
    df["flop_per_bit"] = flop_per_bit(df.gflops, df.input_px)
    df["memory_mb"] = memory_mb(df.weight_file_mb)
    return df


# ---------------------------------------------------------------------------------------------
# chains of sizes and the condition source
# ---------------------------------------------------------------------------------------------
def _row_at(cat: pd.DataFrame, model: str, level: int) -> int:
    """The catalogue row of `model`'s newest weights with generation <= `level`."""
    return _versions(cat)[model][min(level, len(_versions(cat)[model])) - 1]


def _versions(cat: pd.DataFrame) -> dict[str, list[int]]:
    """model -> its rows in generation order (generation g at position g - 1)."""
    out: dict[str, list[int]] = {}
    for i, m in zip(cat.index, cat.model, strict=True):
        out.setdefault(m, []).append(int(i))
    return out


def _chain_rows(cat: pd.DataFrame, models: tuple[str, ...], level: int) -> list[int]:
    return [_row_at(cat, m, level) for m in models]


def family_chains(cat: pd.DataFrame, family: str, n_models: int) -> list[tuple[str, ...]]:
    """Every choice of `n_models` sizes of `family` (light to heavy) whose compute intensity,
    memory and accuracy never decrease from one to the next, at every weights generation: the
    sorted models the rest of the code expects, before and after any weights upgrade."""
    key = tuple(zip(cat.index, cat.family, cat.model, cat.generation, cat.flop_per_bit,
                    cat.memory_mb, cat.top1_pct, strict=True))
    return list(_family_chains(key, family, n_models))


@lru_cache(maxsize=256)
def _family_chains(key: tuple, family: str, n_models: int) -> tuple[tuple[str, ...], ...]:
    cat = pd.DataFrame(list(key), columns=["i", "family", "model", "generation", "flop_per_bit",
                                           "memory_mb", "top1_pct"]).set_index("i")
    rows = cat[cat.family == family]
    models = list(dict.fromkeys(rows.model))
    levels = range(1, int(rows.generation.max()) + 1)
    values = cat[["flop_per_bit", "memory_mb", "top1_pct"]]
    out = []
    for combo in itertools.combinations(models, n_models):
        if all(np.all(np.diff(values.loc[_chain_rows(cat, combo, lv)].to_numpy(), axis=0) >= 0)
               for lv in levels):
            out.append(combo)
    return tuple(out)


def usable_families(cat: pd.DataFrame, split: str, n_models: int) -> list[str]:
    """The families of `split` (in catalogue order) with at least one chain of `n_models`."""
    if split not in SPLITS:
        raise CatalogueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    fams = list(dict.fromkeys(cat.family[cat.split == split]))
    return [f for f in fams if family_chains(cat, f, n_models)]


@dataclass(frozen=True)
class CatalogueCondition:
    """A condition with the catalogue rows behind it."""

    condition: Condition
    rows: np.ndarray
    """(U, F) catalogue row (index of `load_catalogue`) of user u's model j, light to heavy."""
    level: np.ndarray
    """(U,) weights generation of each AiSF: each model uses its newest weights <= level."""

    def table(self, cat: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per (user, model j): family, model, weights and the mapped quantities."""
        cat = load_catalogue() if cat is None else cat
        c = self.condition
        u, f = np.indices(self.rows.shape)
        r = cat.loc[self.rows.ravel()]
        return pd.DataFrame({
            "user": u.ravel(), "j": f.ravel(), "family": r.family.to_numpy(),
            "model": r.model.to_numpy(), "weights": r.weights.to_numpy(),
            "flop_per_bit": c.flop_per_bit.ravel(), "memory_mb": c.memory_mb.ravel(),
            "peak_accuracy": c.peak_accuracy.ravel(),
            "gamma": np.repeat(c.quality_exponent, c.n_models)})


def condition_from_rows(cat: pd.DataFrame, rows: np.ndarray, quality_exponent: np.ndarray,
                        name: str = "") -> Condition:
    """The `Condition` of catalogue `rows` (U, F): rho in FLOP/bit, memory in integer MB, peak
    accuracy = top-1 %, and the given gamma per user (module docstring: the mapping)."""
    rows = np.asarray(rows, dtype=int)

    def pick(col: str) -> np.ndarray:
        return cat[col].to_numpy(dtype=float)[rows]

    return Condition(flop_per_bit=pick("flop_per_bit"), memory_mb=pick("memory_mb"),
                     peak_accuracy=pick("top1_pct"),
                     quality_exponent=np.asarray(quality_exponent, dtype=float), name=name)


def sample_catalogue_condition(rng: np.random.Generator, n_users: int, n_models: int,
                               cfg: ConditionConfig, name: str = "", *, split: str = "twin",
                               random_generation: bool = False,
                               cat: pd.DataFrame | None = None) -> CatalogueCondition:
    """Draw a condition from the catalogue: every AiSF a family of `split` (uniform), one of its
    `family_chains` (uniform), and gamma ~ U[quality_exponent_range].

    The weights are the first published ones (generation 1), or with `random_generation` a
    generation drawn uniformly among those the family publishes. The draws are a fixed number
    per user whatever the catalogue, so a seed gives the same condition."""
    cat = load_catalogue() if cat is None else cat
    fams = usable_families(cat, split, n_models)
    if not fams:
        raise CatalogueError(f"no {split} family has {n_models} sizes increasing in compute, "
                             "memory and accuracy")
    fam_i = rng.integers(len(fams), size=n_users)
    chain_u = rng.random(n_users)
    level_u = rng.random(n_users)
    gamma = rng.uniform(*cfg.quality_exponent_range, size=n_users)
    rows = np.empty((n_users, n_models), dtype=int)
    level = np.ones(n_users, dtype=int)
    chains = {f: family_chains(cat, f, n_models) for f in fams}
    for u in range(n_users):
        fam = fams[fam_i[u]]
        combo = chains[fam][int(chain_u[u] * len(chains[fam]))]
        if random_generation:
            top = int(cat.generation[cat.family == fam].max())
            level[u] = 1 + int(level_u[u] * top)
        rows[u] = _chain_rows(cat, combo, int(level[u]))
    return CatalogueCondition(condition_from_rows(cat, rows, gamma, name), rows, level)


def upgrade_catalogue_condition(rng: np.random.Generator, cc: CatalogueCondition,
                                cfg: ConditionConfig, name: str = "",
                                cat: pd.DataFrame | None = None) -> CatalogueCondition:
    """One upgrade event: each AiSF independently, with probability `upgrade_prob`, takes the next
    published step of its models.

    The step is newer weights of the same architectures if one of its models has any (the
    generation rises by one: accuracy up, compute unchanged, the weight file as published), else
    a move to the family's successor at its first weights, to the sizes nearest in compute
    (least summed |log rho| difference), else nothing (no newer model is published). gamma is
    kept."""
    cat = load_catalogue() if cat is None else cat
    u_n, f_n = cc.rows.shape
    hit = rng.random(u_n) < cfg.upgrade_prob
    rows, level = cc.rows.copy(), cc.level.copy()
    fpb = cat.flop_per_bit.to_numpy()
    for u in np.flatnonzero(hit):
        models = tuple(cat.model.to_numpy()[rows[u]])
        fam = cat.family[rows[u, 0]]
        gens = cat.generation[cat.model.isin(models)]
        newer = sorted(g for g in gens.unique() if g > level[u])
        if newer:
            level[u] = int(newer[0])
            rows[u] = _chain_rows(cat, models, int(level[u]))
            continue
        nxt = cat.successor[rows[u, 0]]
        if not nxt:
            continue
        chains = family_chains(cat, nxt, f_n)
        if not chains:
            raise CatalogueError(f"family {fam}'s successor {nxt} has no {f_n} sorted sizes")
        old = np.log(fpb[rows[u]])
        dist = [np.abs(np.log(fpb[_chain_rows(cat, c, 1)]) - old).sum() for c in chains]
        level[u] = 1
        rows[u] = _chain_rows(cat, chains[int(np.argmin(dist))], 1)
    return CatalogueCondition(condition_from_rows(cat, rows, cc.condition.quality_exponent, name),
                              rows, level)


def catalogue_task_conditions(base_rng: np.random.Generator, upg_rng: np.random.Generator,
                              test_rng: np.random.Generator, n_users: int, n_models: int,
                              cfg: ConditionConfig) -> dict[str, CatalogueCondition]:
    """The nine named conditions of `conditions.make_task_set` from the catalogue: G1-G3 twin
    families at their first weights, G1' and G1'' (G1 upgraded twice), G2' (G2 once), and T1-T3
    test families at a random weights generation; each part from its own generator."""
    g = {n: sample_catalogue_condition(base_rng, n_users, n_models, cfg, n, split="twin")
         for n in ("G1", "G2", "G3")}
    g["G1'"] = upgrade_catalogue_condition(upg_rng, g["G1"], cfg, "G1'")
    g["G1''"] = upgrade_catalogue_condition(upg_rng, g["G1'"], cfg, "G1''")
    g["G2'"] = upgrade_catalogue_condition(upg_rng, g["G2"], cfg, "G2'")
    out = {n: g[n] for n in ("G1", "G1'", "G1''", "G2", "G2'", "G3")}
    for n in ("T1", "T2", "T3"):
        out[n] = sample_catalogue_condition(test_rng, n_users, n_models, cfg, n, split="test",
                                            random_generation=True)
    return out


def task_set_catalogue_conditions(seed: int, n_users: int, n_models: int,
                                  cfg: ConditionConfig) -> dict[str, CatalogueCondition]:
    """The catalogue conditions behind `conditions.make_task_set(seed, ...)` with this `cfg`
    (the same child streams), with their catalogue rows: what an upgrade stream starting from a
    named condition needs to take its next published step."""
    _, base_ss, upg_ss, test_ss = np.random.SeedSequence(int(seed)).spawn(4)
    return catalogue_task_conditions(np.random.default_rng(base_ss),
                                     np.random.default_rng(upg_ss),
                                     np.random.default_rng(test_ss), n_users, n_models, cfg)


def merge_users(base: CatalogueCondition, new: CatalogueCondition, mask: np.ndarray,
                name: str) -> CatalogueCondition:
    """`base` with the users of `mask` taken from `new` (rows, generation and condition)."""
    m = np.asarray(mask, dtype=bool)
    return CatalogueCondition(merge_conditions(base.condition, new.condition, m, name),
                              np.where(m[:, None], new.rows, base.rows),
                              np.where(m, new.level, base.level))
