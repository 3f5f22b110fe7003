"""Product matching (contract §5): the first catalog product whose match rules fit.

Same semantics as :meth:`pipeline.catalog.Product.matches` (exact gateway and api, optional
case-sensitive ``fnmatch`` route glob where ``*`` spans ``/``, optional method compared
case-insensitively; a rule with a route or method never matches an event lacking it), made
fast: rules are indexed by (gateway, api) and globs precompiled; results are cached by
(gateway, api, route, method) in a bounded dict.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import translate
from typing import Final

from pipeline.catalog import Catalog, Product

DEFAULT_CACHE_SIZE: Final = 65_536

_RouteTest = Callable[[str], object]
# (product, compiled route glob or None, method or None), in catalog order.
_Candidate = tuple[Product, _RouteTest | None, str | None]


class ProductMatcher:
    """``match(gateway, api, route, method)`` -> first matching Product, None when unmapped."""

    __slots__ = ("_cache", "_index", "_max_size")

    def __init__(self, catalog: Catalog, max_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._max_size = max_size
        self._cache: dict[tuple[str, str | None, str | None, str | None], Product | None] = {}
        self._index: dict[tuple[str, str], list[_Candidate]] = {}
        for product in catalog.products:
            for rule in product.match:
                route = None if rule.route is None else re.compile(translate(rule.route)).match
                candidates = self._index.setdefault((rule.gateway, rule.api), [])
                candidates.append((product, route, rule.method))

    def match(
        self, gateway: str, api: str | None, route: str | None, method: str | None
    ) -> Product | None:
        key = (gateway, api, route, method)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = self._first_match(gateway, api, route, method)
        if len(self._cache) >= self._max_size:
            self._cache.clear()
        self._cache[key] = found
        return found

    def _first_match(
        self, gateway: str, api: str | None, route: str | None, method: str | None
    ) -> Product | None:
        if api is None:
            return None
        upper_method = None if method is None else method.upper()
        for product, route_test, rule_method in self._index.get((gateway, api), ()):
            if route_test is not None and (route is None or not route_test(route)):
                continue
            if rule_method is not None and upper_method != rule_method:
                continue
            return product
        return None
