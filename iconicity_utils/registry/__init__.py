"""Models, encoders and captioners as data, and the revisions a run loads.

The registry files ``configs/models.yaml`` (diffusion models), ``configs/encoders.yaml`` (image
encoders) and ``configs/captioners.yaml`` (stage 05's image-to-text models) hold one entry per
name; study configs refer to entries by name, as open_clip's ``list_models()`` registry does.  An
entry with a ``standin:`` block is a tiny random-weight model that ``python -m iconicity_utils demo``
builds into ``paths.standins/<name>``; it is opened by the same ``from_pretrained`` call as a hub id.
A ``source`` that starts with ``.``, ``/`` or ``~`` is a local path (relative to the project root);
anything else is a hub id.

Every entry resolves to what a run loads (:meth:`Registry.revision`): a hub id to the *commit* its
requested revision points to (huggingface_hub's own resolution; the local cache's ``refs/`` under
``HF_HUB_OFFLINE=1``), local weights to ``sha256:<hex>`` of the file or folder.  Diffusion models
and captioners are loaded *at* that commit.  ``python -m iconicity_utils registry lock --config
configs/paper.yaml`` pins every model, encoder and captioner of a study in
``configs/paper.lock.yaml``; a study with a lock loads the locked revisions, and any mismatch is a
:class:`LockMismatchError`, never a silent re-resolution.

Modules:

- :mod:`~iconicity_utils.registry.specs`: the entries (:class:`ModelSpec`, :class:`EncoderSpec`,
  :class:`CaptionerSpec`), :func:`load_entries` and :class:`Registry`;
- :mod:`~iconicity_utils.registry.revisions`: :class:`Revision`, hub resolution, the file and
  folder digests;
- :mod:`~iconicity_utils.registry.lockfile` (the lock file, read and applied) and
  :mod:`~iconicity_utils.registry.lock` (:func:`write_lock`, :func:`check_lock`,
  :func:`revision_record`);
- :mod:`~iconicity_utils.registry.load`: :func:`load_pipeline`, :func:`load_captioner`;
- :mod:`~iconicity_utils.registry.encoders`: image encoders, loaded and embedding;
- :mod:`~iconicity_utils.registry.cli`: ``iconicity registry lock|check``.

Example:
    >>> from iconicity_utils import registry
    >>> [m for m in registry.list_models() if not m.startswith("rehearsal-")]
    ['flux1-schnell', 'sd15', 'sd21', 'sd35-medium', 'sdxl', 'tiny-sd-a', 'tiny-sd-b']
    >>> registry.get_model("sd15").pipeline, registry.get_encoder("tiny-clip").is_standin
    ('StableDiffusionPipeline', True)
"""

from iconicity_utils.core.constants import STANDIN_LABEL
from iconicity_utils.registry.load import load_captioner, load_pipeline
from iconicity_utils.registry.lock import check_lock, revision_record, write_lock
from iconicity_utils.registry.lockfile import Lock, lock_path
from iconicity_utils.registry.revisions import (
    LockMismatchError,
    Revision,
    RevisionError,
    content_digest,
    file_sha256,
    resolve_hub_revision,
)
from iconicity_utils.registry.specs import (
    PROJECT_ROOT,
    CaptionerSpec,
    EncoderSpec,
    ModelSpec,
    Registry,
    get_captioner,
    get_encoder,
    get_model,
    is_local,
    is_standin_config,
    list_captioners,
    list_encoders,
    list_models,
    load_entries,
)

__all__ = [
    "PROJECT_ROOT",
    "STANDIN_LABEL",
    "ModelSpec",
    "EncoderSpec",
    "CaptionerSpec",
    "Registry",
    "list_models",
    "list_encoders",
    "list_captioners",
    "get_model",
    "get_encoder",
    "get_captioner",
    "is_local",
    "is_standin_config",
    "load_entries",
    "load_pipeline",
    "load_captioner",
    "Revision",
    "RevisionError",
    "LockMismatchError",
    "Lock",
    "lock_path",
    "write_lock",
    "check_lock",
    "revision_record",
    "content_digest",
    "file_sha256",
    "resolve_hub_revision",
]
