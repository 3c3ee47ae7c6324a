"""storage: the artifact store, manifests, lineage and atomic writes. The only package that knows paths.

See ``storage.store`` for the on-disk layout and ``storage.lineage`` for lineage queries.
"""

from storage.store import ArtifactNotFound, ArtifactStore, Manifest, compute_id

__all__ = ["ArtifactNotFound", "ArtifactStore", "Manifest", "compute_id"]
