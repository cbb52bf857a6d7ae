"""JSON for the runtime's command line without `import json`, which imports `re` and `enum` (about 5 ms of a
start that runc makes in 20). These are CPython's own C scanner and encoder, the ones `json` itself uses; any
input they do not take as is (bytes that are not UTF-8, a syntax error) goes to `json`, so results, errors and
their messages are json's."""

from __future__ import annotations

try:
    from _json import encode_basestring_ascii, make_encoder, make_scanner
except ImportError:  # an interpreter without the accelerator: json's pure-Python path
    make_scanner = None

_SPACE = " \t\n\r"


class _Context:
    """The attributes the C scanner reads from a json.JSONDecoder, at json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_scan = make_scanner(_Context()) if make_scanner else None


def loads(data: str | bytes) -> object:
    if _scan is not None:
        try:
            text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
            start = len(text) - len(text.lstrip(_SPACE))
            value, end = _scan(text, start)
            if end == len(text) or not text[end:].strip(_SPACE):
                return value
        except (StopIteration, UnicodeDecodeError, ValueError, SystemError):
            pass  # SystemError: the scanner makes its error from json.decoder, and only if that is imported
    import json

    return json.loads(data)  # json's error (or answer) for what the fast path did not take


def _unknown(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: object) -> str:
    """json.dumps(obj) with its defaults (", " and ": " separators, ASCII, NaN allowed)."""
    if make_scanner is None:
        import json

        return json.dumps(obj)
    encode = make_encoder({}, _unknown, encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return "".join(encode(obj, 0))
