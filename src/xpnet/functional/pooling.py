"""Work in progress: being written (placeholder until its module lands)."""

from typing import Any



def adaptive_avg_pool2d(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def avg_pool2d(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError


def max_pool2d(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError
