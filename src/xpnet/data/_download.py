"""Fetching MNIST and CIFAR from their official hosts, checked against the published MD5s.

A file is written under a temporary name beside its destination, its MD5 computed while it
streams, and renamed into place only when the sum matches: an interrupted or corrupt
download never leaves a file that looks complete.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .._atomic import replacing
from .._paths import kind_of
from .cifar import CIFAR_LAYOUTS
from .files import MNIST_MD5, DatasetError, md5sum

__all__ = ["DOWNLOADS", "Download", "download"]

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Download:
    """What one dataset's download fetches.

    Attributes
    ----------
    files : dict
        File name to its published MD5 sum.
    mirrors : tuple of str
        Base URLs tried in order; each file is ``mirror + name``.
    """

    files: dict[str, str]
    mirrors: tuple[str, ...]


#: The datasets :func:`download` knows, with their official files and hosts.
DOWNLOADS: dict[str, Download] = {
    "mnist": Download(
        dict(MNIST_MD5),
        (
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://yann.lecun.com/exdb/mnist/",
        ),
    ),
    **{
        name: Download({layout.archive: layout.md5}, ("https://www.cs.toronto.edu/~kriz/",))
        for name, layout in CIFAR_LAYOUTS.items()
    },
}


def _fetch(
    url: str, destination: Path, md5: str, timeout: float, report: Callable[[str], None]
) -> None:
    """Stream ``url`` into a temporary file beside ``destination``; rename it into place
    only if its MD5 is ``md5``."""
    digest = hashlib.md5(usedforsecurity=False)
    with (
        replacing(destination) as out,
        urllib.request.urlopen(url, timeout=timeout) as src,
    ):
        total = src.headers.get("Content-Length")
        report(f"downloading {url}" + (f" ({int(total):,} bytes)" if total else ""))
        for block in iter(lambda: src.read(_CHUNK), b""):
            digest.update(block)
            out.write(block)
        got = digest.hexdigest()
        if got != md5:
            raise DatasetError(
                f"{url}: checksum mismatch: md5 {got}, expected {md5} (not the official file)"
            )


def download(
    dataset: str,
    directory: str | os.PathLike[str],
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 60.0,
    quiet: bool = False,
) -> Path:
    """Download a dataset's official files into ``directory`` and check their MD5 sums.

    Files already there with the right sum are kept; others are fetched. MNIST's four IDX
    files land in ``directory``; CIFAR's archive too (:func:`load_cifar` reads it without
    extracting).

    Parameters
    ----------
    dataset : {"mnist", "cifar10", "cifar100"}
    directory : path-like
        Created if missing.
    mirrors : sequence of str, optional
        Base URLs to try in order instead of the official hosts (a file's URL is the
        mirror followed by its name). Default: ``$XPNET_DATA_MIRROR`` when set, else the
        official hosts.
    timeout : float, default 60
        Seconds to wait for a host to answer.
    quiet : bool, default False
        Do not print what is downloaded (it goes to stderr).

    Returns
    -------
    Path
        ``directory``.

    Raises
    ------
    DatasetError
        When no mirror gives a file with the published MD5; the message lists each attempt
        and where to get the files by hand. Nothing partial is left behind.
    """
    try:
        spec = DOWNLOADS[dataset]
    except (KeyError, TypeError):
        raise ValueError(f"dataset: expected one of {sorted(DOWNLOADS)}, got {dataset!r}") from None
    if mirrors is None:
        env = os.environ.get("XPNET_DATA_MIRROR", "").strip()
        mirrors = (env,) if env else spec.mirrors
    if isinstance(mirrors, str) or not mirrors:
        raise ValueError(f"mirrors: expected a non-empty sequence of base URLs, got {mirrors!r}")
    folder = Path(directory).expanduser()
    if folder.exists() and not folder.is_dir():
        raise DatasetError(f"{folder}: is {kind_of(folder)}, expected a folder to download into")
    folder.mkdir(parents=True, exist_ok=True)

    def report(line: str) -> None:
        if not quiet:
            print(line, file=sys.stderr, flush=True)

    for name, md5 in spec.files.items():
        destination = folder / name
        if destination.is_file() and md5sum(destination) == md5:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror if mirror.endswith("/") else mirror + "/"
            url += name
            try:
                _fetch(url, destination, md5, timeout, report)
                break
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                failures.append(f"{url}: {reason}")
        else:
            tried = "; ".join(failures)
            raise DatasetError(
                f"{dataset}: could not download {name} ({tried}). Without network access, "
                f"fetch {name} (md5 {md5}) elsewhere and put it in {folder}"
            )
    return folder
