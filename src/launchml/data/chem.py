"""Chemistry features of molecule (SMILES) columns, with RDKit.

    state = fit_chem(name, train_col)            # JSON-able; {} when RDKit is missing
    arrays = transform_chem(name, state, col)    # {'<col>:ecfp': ..., '<col>:ecfp_count': ...,
                                                 #  '<col>:descriptors': ...}, float32 N x k

- ``<col>:ecfp``: Morgan fingerprint bits (ECFP4: radius 2), ``BITS`` of them;
- ``<col>:ecfp_count``: Morgan counts (radius 2, folded to ``BITS``);
- ``<col>:descriptors``: RDKit's 2D descriptors (``Descriptors._descList`` without the
  slowest, ``SKIP``), missing or non-finite values imputed with the training median, and the
  descriptors whose values in (a sample of) the training rows exceed ``LOG_ABOVE`` (Ipc,
  path counts ...) put on a signed log scale, so that standardized linear models are not
  dominated by them.

These arrays feed LightGBM and the linear family (the character CNN reads the
character ids beside them). A SMILES string RDKit cannot parse is an error naming the
column, every such data row (up to ``SHOWN``) and the fix: in the training rows a
``DataError`` at prepare, in served rows an ``InputError``. A missing value is an empty
molecule (all features zero / the training medians), as the character ids treat it.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from launchml.errors import DataError, InputError

RADIUS, BITS = 2, 2048
# left out: QED (a third of all descriptor time for one value), SPS and the BCUT2D
# eigenvalues (another 13%), and the 85 fragment counts fr_* (12%), which the Morgan counts
# hold already
SKIP = ("qed", "SPS")
SKIP_PREFIXES = ("BCUT2D_", "fr_")
LOG_ABOVE = 1e3
SHOWN = 10
FIT_SAMPLE = 256  # training molecules whose descriptors give the medians and log flags


def available() -> bool:
    try:
        import rdkit  # noqa: F401
    except ImportError:
        return False
    return True


def _values(col: pd.Series) -> list[str]:
    return ["" if pd.isna(v) else str(v).strip() for v in col]


def _molecules(name: str, col: pd.Series, *, training: bool) -> list[Any]:
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # the error below names the rows; no stderr noise
    values = _values(col)
    mols = [Chem.MolFromSmiles(v) for v in values]
    bad = [i for i, m in enumerate(mols) if m is None]
    if bad:
        rows = ", ".join(f"{col.index[i]} ({values[i][:40]!r})" for i in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        msg = (f"column '{name}' (molecule): {len(bad)} value(s) are not SMILES RDKit can "
               f"read: data rows {rows}{more}. Fix: correct or remove those rows, leave the "
               "value empty")
        if training:
            raise DataError(msg + f", or set data.column_types: {{'{name}': 'text'}}.")
        raise InputError(msg + ".")
    return mols


def _descriptor_functions(names: list[str] | None = None) -> list[tuple[str, Any]]:
    from rdkit.Chem import Descriptors

    if names is not None:  # a fitted state's list, whatever this version would choose
        by_name = dict(Descriptors._descList)
        return [(n, by_name[n]) for n in names]
    return [(n, f) for n, f in Descriptors._descList
            if n not in SKIP and not n.startswith(SKIP_PREFIXES)]


def _raw_descriptors(mols: list[Any], functions: list[tuple[str, Any]]) -> np.ndarray:
    out = np.full((len(mols), len(functions)), np.nan, dtype=np.float64)
    for i, mol in enumerate(mols):
        if mol.GetNumAtoms() == 0:
            continue  # a missing value: the training medians
        for j, (_, f) in enumerate(functions):
            with contextlib.suppress(ValueError, ZeroDivisionError, RuntimeError,
                                     OverflowError):
                out[i, j] = float(f(mol))
    out[~np.isfinite(out)] = np.nan
    return out


def fit_chem(name: str, col: pd.Series) -> dict[str, Any]:
    """The descriptor names, medians and log flags of the training rows; checks every
    training SMILES parses. ``{}`` when RDKit is not installed (the character ids alone)."""
    if not available():
        from launchml import console

        console.warn(f"column '{name}' (molecule): RDKit is not installed, so it is read as "
                     "characters only (no fingerprints or descriptors). Fix: pip install "
                     "'launchml[chem]'.")
        return {}
    mols = _molecules(name, col, training=True)  # every row parses, or a DataError
    functions = _descriptor_functions()
    # medians and ranges from a sample: descriptors take ~5 ms a molecule, and transform
    # computes them for every row anyway
    pick = np.random.default_rng(0).permutation(len(mols))[:FIT_SAMPLE]
    raw = _raw_descriptors([mols[i] for i in sorted(pick)], functions)
    with np.errstate(all="ignore"):
        medians = np.nan_to_num(np.nanmedian(raw, axis=0) if len(raw) else
                                np.zeros(raw.shape[1]))
        peak = np.nan_to_num(np.nanmax(np.abs(raw), axis=0) if len(raw) else
                             np.zeros(raw.shape[1]))
    return {"chem": {"radius": RADIUS, "bits": BITS,
                     "descriptors": [n for n, _ in functions],
                     "medians": [float(m) for m in medians],
                     "log": [bool(p > LOG_ABOVE) for p in peak]}}


def transform_chem(name: str, state: dict[str, Any], col: pd.Series) -> dict[str, np.ndarray]:
    """The fingerprint and descriptor arrays of a column whose state has ``chem``."""
    chem = state.get("chem")
    if not chem:
        return {}
    from rdkit.Chem import rdFingerprintGenerator

    mols = _molecules(name, col, training=False)
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=chem["radius"], fpSize=chem["bits"])
    counts = np.zeros((len(mols), chem["bits"]), dtype=np.float32)
    for i, mol in enumerate(mols):
        counts[i] = gen.GetCountFingerprintAsNumPy(mol)
    desc = _raw_descriptors(mols, _descriptor_functions(chem["descriptors"]))
    desc = np.where(np.isnan(desc), np.asarray(chem["medians"]), desc)
    logged = np.asarray(chem["log"], dtype=bool)
    desc[:, logged] = np.sign(desc[:, logged]) * np.log1p(np.abs(desc[:, logged]))
    big = np.finfo(np.float32).max / 4
    return {f"{name}:ecfp": (counts > 0).astype(np.float32),
            f"{name}:ecfp_count": counts,
            f"{name}:descriptors": np.clip(desc, -big, big).astype(np.float32)}
