"""The installed version of streamkit."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("streamkit")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0+unknown"
