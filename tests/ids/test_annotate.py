"""annotate_samples on a real L1000 plate with reference tables from the real files."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from conftest import shared_path
from perturbridge.ids.annotate import IdentityResolvers, annotate_samples
from perturbridge.ids.cells import CellResolver
from perturbridge.ids.compounds import CompoundResolver
from perturbridge.ids.genes import GeneResolver
from perturbridge.ids.parsers_compounds import parse_lincs_compoundinfo
from perturbridge.ids.parsers_genes_cells import parse_depmap_sample_info, parse_hgnc
from perturbridge.io import write_h5ad
from perturbridge.schema import validate_samples
from perturbridge.sources import read_l1000

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def plate():
    return read_l1000(shared_path("l1000_cmapPy", "test_l1000.gct")).samples


@pytest.fixture(scope="module")
def resolvers(plate) -> IdentityResolvers:
    lincs = parse_lincs_compoundinfo(
        shared_path("l1000_signatureSearch", "lincs_pert_info2.tsv.gz")
    )
    names = set(plate.obs["perturbagen"].astype(str).str.lower())
    ids = set(plate.obs["compound_id_source"].astype(str))
    comp = lincs["compounds"]
    sel = comp["ref_id"].isin(ids) | comp["name"].str.lower().isin(names)
    sel &= comp["name"].str.lower() != "neratinib"  # one compound left out: unresolved
    syn = lincs["compound_synonyms"]
    syn = syn[syn["ref_id"].isin(comp.loc[sel, "ref_id"])]
    depmap = parse_depmap_sample_info(shared_path("reference_cell_lines", "depmap_sample_info.csv"))
    hgnc = parse_hgnc(shared_path("reference_hgnc", "hgnc_complete_set.txt.gz"))
    return IdentityResolvers(
        compounds=CompoundResolver.from_tables(compounds=comp[sel], compound_synonyms=syn),
        cells=CellResolver(depmap["cells"], depmap["cell_synonyms"]),
        genes=GeneResolver(hgnc["genes"], hgnc["gene_synonyms"]),
    )


def test_l1000_plate_gets_identities(plate, resolvers, tmp_path) -> None:
    out, ledger = annotate_samples(plate, resolvers)
    validate_samples(out)
    back = ad.read_h5ad(write_h5ad(out, tmp_path / "annotated.h5ad"))  # writes cleanly
    assert back.var_names.equals(out.var_names)
    obs = out.obs
    assert out.n_obs == plate.n_obs  # nothing dropped
    treated = ~obs["is_control"].to_numpy()
    status = obs["compound_status"].astype(object)
    assert status[~treated].isna().all()
    resolved = (status == "resolved").to_numpy()
    print(f"compounds resolved: {resolved.sum()} of {treated.sum()} treated wells")
    assert resolved.sum() >= 0.9 * (treated.sum() - (obs["perturbagen"] == "neratinib").sum())
    ner = (obs["perturbagen"] == "neratinib").to_numpy()
    assert ner.any() and (status[ner] == "unresolved").all()
    noted = ledger.to_frame()
    noted_ids = set(noted.loc[noted["reason"] == "unresolved", "id"])
    assert set(obs.index[ner]) <= noted_ids
    # parents are InChIKeys; the condition key stays the upstream id where no key was given
    parents = obs.loc[resolved, "compound_parent_inchikey"].astype(str)
    assert parents.str.fullmatch(r"[A-Z]{14}-[A-Z]{10}-[A-Z]").all()
    # A375 → Cellosaurus accession from DepMap's RRID column
    assert set(obs["cell_context"].astype(str)) == {"CVCL_0132"}
    assert (obs["cell_status"] == "resolved").all()
    # genes: Ensembl ids, every input probe accounted for
    assert out.var_names.str.match(r"^ENSG\d{11}$").mean() > 0.95
    print(f"genes: {out.n_vars} of {plate.n_vars} under an Ensembl id")
    gene_notes = noted[noted["stage"] == "ids_genes"]
    n_dropped = int((gene_notes["status"] == "dropped").sum())
    assert int(out.var["n_inputs"].sum()) + n_dropped == plate.n_vars  # every probe
    # values carried over unchanged for a gene that maps one to one
    sym = plate.var["symbol"].iloc[0]
    col = int(np.flatnonzero(out.var["symbol"].astype(str) == sym)[0])
    np.testing.assert_array_equal(np.asarray(out.X)[:, col], np.asarray(plate.X)[:, 0])


def test_annotate_keeps_upstream_inchikey(plate, resolvers) -> None:
    s = plate.copy()
    obs = s.obs.copy()
    obs["compound_inchikey"] = pd.Categorical(
        np.where(obs["is_control"], None, "AAAAAAAAAAAAAA-BBBBBBBBBB-N")
    )
    s.obs = obs
    out, _ = annotate_samples(s, IdentityResolvers(compounds=resolvers.compounds), genes=False)
    keys = out.obs.loc[~out.obs["is_control"], "compound_inchikey"].astype(str)
    assert (keys == "AAAAAAAAAAAAAA-BBBBBBBBBB-N").all()


def test_annotate_refuses_layers_when_rekeying_genes(plate, resolvers) -> None:
    s = plate.copy()
    s.layers["raw"] = np.asarray(s.X).copy()
    with pytest.raises(ValueError, match=r"re-keys genes of X only.*\['raw'\].*genes=False"):
        annotate_samples(s, IdentityResolvers(genes=resolvers.genes))
    out, _ = annotate_samples(s, IdentityResolvers(cells=resolvers.cells), genes=False)
    assert "raw" in out.layers
