"""Released parts by name: files of Hugging Face hub repositories (``hfl/chinese-roberta-wwm-ext``,
``LTP/legacy``, ...), through ``huggingface_hub`` and its cache.

A name that is a local path, a ``gs://`` path, or has no ``ORG/NAME`` shape is not a hub id and is
returned as it is. With ``HF_HUB_OFFLINE=1`` (or no network) only the cache is read, and a file
it lacks is a one-line error saying how to get it.
"""
import os
import re

from wwm_core.errors import UsageError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w.-]+)?$")


def is_hub_id(name: str) -> bool:
    """``ORG/NAME`` (optionally ``@revision``) that is not an existing local path or a URL."""
    return bool(name) and "://" not in name and not os.path.exists(name) and bool(_HUB_ID.match(name))


def hub_file(repo: str, filename: str) -> str:
    """A local path of ``filename`` in hub repository ``repo`` (``ORG/NAME[@revision]``), from the
    cache or downloaded into it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, revision = repo.partition("@")
    unreachable = _why_unreachable()
    try:
        return hf_hub_download(repo_id=repo_id, filename=filename, revision=revision or None,
                               local_files_only=bool(unreachable))
    except LocalEntryNotFoundError as error:
        raise UsageError(
            f"{repo_id}/{filename} is not in the Hugging Face cache ({_cache_dir()}) and the hub cannot be reached"
            f"{f' ({unreachable})' if unreachable else ''}: run once where the hub is reachable "
            f"(hf download {repo_id} {filename}), copy that cache here, or pass a local path") from error
    except EntryNotFoundError as error:
        raise UsageError(f"the hub repository {repo_id} has no file {filename}") from error
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise UsageError(f"cannot fetch {filename} of {repo_id} from the Hugging Face hub: "
                         f"{str(error).splitlines()[0]}") from error


def hub_folder(repo: str, filenames) -> str:
    """The local snapshot folder holding ``filenames`` of ``repo`` (each fetched as ``hub_file``)."""
    paths = [hub_file(repo, name) for name in filenames]
    return os.path.dirname(paths[0])


def _cache_dir() -> str:
    from huggingface_hub import constants

    return constants.HF_HUB_CACHE


def _why_unreachable():
    """Why the hub cannot be asked (then only the cache is read), or None. A host that does not
    resolve fails at once here, instead of after huggingface_hub's retries (about 20 s a file)."""
    import socket
    import urllib.parse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        return f"{host} does not resolve: {error}"
    return None
