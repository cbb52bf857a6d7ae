"""Page-number pagination: ?page=N (from 1) & page_size=M (1..500, default 50); other values are refused."""

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        for name, top in (("page", None), ("page_size", self.max_page_size)):
            raw = request.query_params.get(name)
            if raw is None:
                continue
            # Measured before int(), which refuses over 4300 digits; a page past the end is the paginator's 404.
            digits = raw.lstrip("0") if raw.isascii() and raw.isdigit() else ""
            n = (int(digits) if len(digits) <= 18 else 1 << 62) if digits else 0
            if n < 1 or (top is not None and n > top):
                bounds = f"from 1 to {top}" if top else "from 1"
                raise ValidationError({name: [f"{name} must be a whole number {bounds}"]})
        return super().paginate_queryset(queryset, request, view)
