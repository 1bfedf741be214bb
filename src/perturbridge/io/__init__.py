"""Reading and writing files: GCT/GCTX, atomic AnnData writes with provenance, fast reads
of the elements of AnnData files."""

from ._atomic import atomic_dir, atomic_file, file_sha256, provenance, write_h5ad
from ._h5read import read_element
from .gct import GCTXFile, read_gct, read_gctx, write_gct, write_gctx

__all__ = [
    "GCTXFile",
    "atomic_dir",
    "atomic_file",
    "file_sha256",
    "provenance",
    "read_element",
    "read_gct",
    "read_gctx",
    "write_gct",
    "write_gctx",
    "write_h5ad",
]
