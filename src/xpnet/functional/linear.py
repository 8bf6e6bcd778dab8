"""Work in progress: being written (placeholder until its module lands)."""

from typing import Any



def dropout(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def flatten(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def linear(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError
